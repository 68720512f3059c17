import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { api, setCsrfToken, setSessionLostHandler } from "./api";
import type { Session } from "./types";

interface SessionState {
  session: Session | null;
  /** Why the last session ended, when it was not a sign-out. */
  notice: string | null;
  loading: boolean;
  signIn: (key: string) => Promise<void>;
  signOut: () => Promise<void>;
}

const Context = createContext<SessionState | null>(null);

export function useSession(): SessionState {
  const state = useContext(Context);
  if (!state) throw new Error("useSession outside SessionProvider");
  return state;
}

/** Whether the signed-in role may change things (the API enforces it; this only hides buttons). */
export function useCanManage(): boolean {
  return useSession().session?.role === "admin";
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);

  const adopt = useCallback((next: Session | null) => {
    setCsrfToken(next?.csrf_token ?? null);
    setSession(next);
  }, []);

  useEffect(() => {
    setSessionLostHandler(() => {
      adopt(null);
      setNotice("Your session has ended. Sign in again.");
    });
    api<Session | { signed_in: false; master_key_set: boolean }>("ui/api/session", { anonymous: true })
      .then((answer) => {
        if (answer.signed_in) adopt(answer);
        else if (!answer.master_key_set)
          setNotice("The gateway has no master key (general_settings.master_key): nobody can sign in.");
      })
      .catch((error: unknown) => setNotice(error instanceof Error ? error.message : String(error)))
      .finally(() => setLoading(false));
    return () => setSessionLostHandler(null);
  }, [adopt]);

  const signIn = useCallback(
    async (key: string) => {
      const next = await api<Session>("ui/api/session", {
        method: "POST",
        body: { key },
        anonymous: true,
      });
      setNotice(null);
      adopt(next);
    },
    [adopt],
  );

  const signOut = useCallback(async () => {
    try {
      await api("ui/api/session", { method: "DELETE", anonymous: true });
    } finally {
      adopt(null);
    }
  }, [adopt]);

  return (
    <Context.Provider value={{ session, notice, loading, signIn, signOut }}>{children}</Context.Provider>
  );
}
