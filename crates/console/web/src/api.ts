// Every call goes to the gateway's own admin API (the one curl uses); the browser's session
// cookie authenticates it and the CSRF token, held here in memory, accompanies every change.

/** Where the gateway's API lives: the folder above the console's page (`/ui/` -> `/`). */
export const API_BASE = new URL("../", window.location.href.split("#")[0]).pathname;

let csrfToken: string | null = null;
let onSessionLost: (() => void) | null = null;

export function setCsrfToken(token: string | null) {
  csrfToken = token;
}

/** Called when the API answers 401 to a signed-in page (the session expired or was revoked). */
export function setSessionLostHandler(handler: (() => void) | null) {
  onSessionLost = handler;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public param?: string | null,
  ) {
    super(message);
  }
}

type Method = "GET" | "POST" | "DELETE";

export interface RequestOptions {
  method?: Method;
  body?: unknown;
  /** Do not treat a 401 as a lost session (sign-in itself). */
  anonymous?: boolean;
}

/** The message of an error answer: OpenAI's shape, or FastAPI's `detail` that LiteLLM uses. */
function errorMessage(status: number, body: unknown): { message: string; param?: string | null } {
  if (body && typeof body === "object") {
    const error = (body as { error?: unknown }).error;
    if (error && typeof error === "object") {
      const e = error as { message?: unknown; param?: unknown };
      if (typeof e.message === "string") {
        return { message: e.message, param: typeof e.param === "string" ? e.param : null };
      }
    }
    const detail = (body as { detail?: unknown }).detail;
    if (typeof detail === "string") return { message: detail };
  }
  return { message: `the gateway answered ${status}` };
}

export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const method = options.method ?? "GET";
  const headers: Record<string, string> = { Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response: Response;
  try {
    response = await fetch(API_BASE + path.replace(/^\//, ""), {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch {
    throw new ApiError(0, "the gateway cannot be reached");
  }
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !options.anonymous && onSessionLost) onSessionLost();
    const { message, param } = errorMessage(response.status, body);
    throw new ApiError(response.status, message, param);
  }
  return body as T;
}

/** A query string from the defined, non-empty values. */
export function query(params: Record<string, string | number | boolean | undefined | null>) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
