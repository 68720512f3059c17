import { Badge, Text, Tooltip } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { api } from "./api";

/** What Vault holds for one virtual key's copy (`GET /admin/vault/copies`). */
export interface VaultCopy {
  name: string;
  /** The copy's Vault URL (never its value). */
  path: string;
  status: "present" | "deleted" | "destroyed" | "missing" | "unknown";
  version: number | null;
  written_at: string | null;
  deleted_at: string | null;
  error: string | null;
}

export const copiesQueryKey = ["vault-copies"];

/** The Vault copies of these secret names, by name. */
export function useCopies(names: string[]) {
  const sorted = [...new Set(names)].sort();
  return useQuery({
    queryKey: [...copiesQueryKey, sorted],
    enabled: sorted.length > 0,
    queryFn: async () => {
      const search = new URLSearchParams();
      for (const name of sorted) search.append("name", name);
      const answer = await api<{ copies: VaultCopy[] }>(`admin/vault/copies?${search}`);
      return Object.fromEntries(answer.copies.map((copy) => [copy.name, copy]));
    },
  });
}

const COLORS: Record<VaultCopy["status"], string> = {
  present: "teal",
  deleted: "gray",
  destroyed: "gray",
  missing: "red",
  unknown: "yellow",
};

export function CopyStatus({ copy }: { copy: VaultCopy | undefined }) {
  if (!copy) return <Text size="xs" c="dimmed">not checked</Text>;
  const when = copy.status === "deleted" ? copy.deleted_at : copy.written_at;
  const detail = copy.error ?? (when ? `${copy.status === "deleted" ? "deleted" : "written"} ${new Date(when).toLocaleString()}` : null);
  const badge = (
    <Badge color={COLORS[copy.status]} data-testid="copy-status">
      {copy.status === "deleted" ? "soft-deleted" : copy.status}
    </Badge>
  );
  return (
    <>
      {detail ? <Tooltip label={detail}>{badge}</Tooltip> : badge}
      {when && copy.status !== "unknown" && (
        <Text size="xs" c="dimmed">
          {copy.status === "deleted" ? "deleted" : "written"} {new Date(when).toLocaleString()}
          {copy.version != null ? ` · v${copy.version}` : ""}
        </Text>
      )}
    </>
  );
}
