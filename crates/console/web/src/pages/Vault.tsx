import { Alert, Badge, Button, Card, Group, Loader, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../api";
import { CopyStatus, type VaultCopy } from "../copies";
import { duration } from "../format";
import { Leases, type PathStatus } from "./Leases";
import { useCanManage, useSession } from "../session";

interface Reference {
  name: string;
  used_at: string[];
  source?: "vault" | "env" | "literal";
  path?: string;
  read_from_vault: boolean;
  last_read_secs_ago: number | null;
  error: string | null;
}

interface VaultStatus {
  enabled: boolean;
  status: string;
  last_error?: string | null;
  address?: string;
  login_namespace?: string | null;
  secret_namespace?: string | null;
  mount?: string;
  path_prefix?: string | null;
  auth_method?: string;
  token?: { ttl_secs?: number; renewable?: boolean; policies?: string[]; expire_time?: string | null; error?: string };
  token_ttl_remaining_secs?: number | null;
  logins?: number;
  renewals?: number;
  auth_error?: string | null;
  refresh_interval_secs?: number;
  mirror_prefix?: string | null;
  references: Reference[];
  paths?: PathStatus[];
}

interface Drift {
  clean: boolean;
  keys_without_copy: {
    token: string;
    key_name: string;
    key_alias: string | null;
    expected_secret: string;
    /** `missing`, `deleted`, `destroyed` or `holds another value`. */
    problem: string;
    path: string | null;
  }[];
  copies_without_key: VaultCopy[];
  deleted_copies: VaultCopy[];
  pending_deletions: VaultCopy[];
}

interface Repair {
  repaired: string[];
  /** Still out of step: a key whose value is nowhere in Vault's history, or Vault refused. */
  left: string[];
  drift: Drift;
}


function Field({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text size="sm" className="key-raw">
        {children}
      </Text>
    </div>
  );
}

function Connection({ vault }: { vault: VaultStatus }) {
  const ttl = vault.token?.ttl_secs;
  return (
    <Card withBorder>
      <Stack gap="sm">
        <Group justify="space-between">
          <Title order={3} size="h4">
            Connection
          </Title>
          <Badge color={vault.status === "ok" ? "teal" : "red"} data-testid="vault-status">
            {vault.status}
          </Badge>
        </Group>
        {vault.last_error && (
          <Alert color="red" title="Last error" role="alert">
            {vault.last_error}
          </Alert>
        )}
        <SimpleGrid cols={{ base: 1, xs: 2, md: 3 }}>
          <Field label="Address">{vault.address}</Field>
          <Field label="Namespace (secrets / login)">
            {vault.secret_namespace ?? "none"} / {vault.login_namespace ?? "none"}
          </Field>
          <Field label="KV mount and prefix">
            {vault.mount}
            {vault.path_prefix ? `/${vault.path_prefix}` : ""}
          </Field>
          <Field label="Auth method">{vault.auth_method}</Field>
          <Field label="Token TTL">
            {vault.token?.error
              ? `lookup failed: ${vault.token.error}`
              : ttl === 0
                ? "never expires"
                : `${duration(ttl)}${vault.token?.renewable ? ", renewable" : ", not renewable"}`}
          </Field>
          <Field label="Token policies">{vault.token?.policies?.join(", ") || "—"}</Field>
          <Field label="Logins / renewals">
            {vault.logins} / {vault.renewals}
          </Field>
          <Field label="Refresh every">{duration(vault.refresh_interval_secs)}</Field>
          <Field label="Virtual key copies under">{vault.mirror_prefix ?? "not copied"}</Field>
        </SimpleGrid>
        {vault.auth_error && (
          <Alert color="red" title="Login or renewal failing" role="alert">
            {vault.auth_error}
          </Alert>
        )}
      </Stack>
    </Card>
  );
}

function References({ references }: { references: Reference[] }) {
  return (
    <Card withBorder>
      <Stack gap="sm">
        <Title order={3} size="h4">
          Secret references
        </Title>
        {references.length === 0 ? (
          <Text c="dimmed">The config has no os.environ/ references.</Text>
        ) : (
          <div className="table-scroll" tabIndex={0}>
            <Table verticalSpacing="xs" miw={720} aria-label="Secret references">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Source of the value in use</Table.Th>
                  <Table.Th>Last read from Vault</Table.Th>
                  <Table.Th>Used at</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {references.map((r) => (
                  <Table.Tr key={r.name} data-testid={`reference-${r.name}`}>
                    <Table.Td>
                      <Text size="sm" fw={500}>
                        {r.name}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Badge color={r.source === "vault" ? "teal" : "gray"}>
                        {r.source === "vault" ? "Vault" : r.source === "env" ? "environment" : (r.source ?? "unresolved")}
                      </Badge>
                      {r.path && (
                        <Text size="xs" className="key-raw">
                          {r.path}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">
                        {r.last_read_secs_ago === null ? (r.read_from_vault ? "never" : "not read from Vault") : `${duration(r.last_read_secs_ago)} ago`}
                      </Text>
                      {r.error && (
                        <Text size="xs" c="red.9" role="alert">
                          refresh failed: {r.error}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <Text size="xs">{r.used_at.join(", ")}</Text>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
        )}
      </Stack>
    </Card>
  );
}

function CopyRows({ copies }: { copies: VaultCopy[] }) {
  return (
    <>
      {copies.map((copy) => (
        <Table.Tr key={copy.name} data-testid={`copy-${copy.name}`}>
          <Table.Td>
            <Text size="xs" className="key-raw">
              {copy.path}
            </Text>
          </Table.Td>
          <Table.Td>
            <CopyStatus copy={copy} />
          </Table.Td>
        </Table.Tr>
      ))}
    </>
  );
}

function DriftCard() {
  const canManage = useCanManage();
  const queries = useQueryClient();
  const [result, setResult] = useState<Repair | null>(null);
  const drift = useQuery({ queryKey: ["vault-drift"], queryFn: () => api<Drift>("admin/vault/drift") });
  const repair = useMutation({
    mutationFn: () => api<Repair>("admin/vault/drift/repair", { method: "POST" }),
    onSuccess: (answer) => {
      setResult(answer);
      queries.setQueryData(["vault-drift"], answer.drift);
    },
  });
  const data = drift.data;
  const section = (title: string, copies: VaultCopy[], empty: string) => (
    <Stack gap={4}>
      <Text fw={500} size="sm">
        {title}
      </Text>
      {copies.length === 0 ? (
        <Text size="sm" c="dimmed">
          {empty}
        </Text>
      ) : (
        <div className="table-scroll" tabIndex={0}>
          <Table verticalSpacing={4} aria-label={title}>
            <Table.Tbody>
              <CopyRows copies={copies} />
            </Table.Tbody>
          </Table>
        </div>
      )}
    </Stack>
  );
  return (
    <Card withBorder>
      <Stack gap="sm">
        <Group justify="space-between">
          <Title order={3} size="h4">
            Keys and their Vault copies
          </Title>
          {data && (
            <Badge color={data.clean ? "teal" : "red"} data-testid="drift-status">
              {data.clean ? "in step" : "drift"}
            </Badge>
          )}
        </Group>
        {drift.isLoading && <Loader aria-label="Comparing keys and Vault" />}
        {drift.error && (
          <Alert color="red" title="Drift could not be checked" role="alert">
            {drift.error.message}
          </Alert>
        )}
        {data && (
          <>
            <Stack gap={4}>
              <Text fw={500} size="sm">
                Keys without a copy
              </Text>
              {data.keys_without_copy.length === 0 ? (
                <Text size="sm" c="dimmed">
                  Every key has its copy.
                </Text>
              ) : (
                data.keys_without_copy.map((key) => (
                  <Text size="sm" key={key.token} data-testid={`uncopied-${key.key_alias ?? key.token}`}>
                    {key.key_alias ?? key.key_name}: copy {key.problem} at {key.path ?? key.expected_secret}.
                  </Text>
                ))
              )}
            </Stack>
            {section("Copies without a key", data.copies_without_key, "None.")}
            {section("Queued deletions", data.pending_deletions, "None.")}
            {section("Soft-deleted copies of deleted keys", data.deleted_copies, "None.")}
            {canManage && (
              <Group>
                <Button
                  color="red"
                  onClick={() => repair.mutate()}
                  loading={repair.isPending}
                  disabled={data.clean && data.pending_deletions.length === 0}
                >
                  Repair
                </Button>
                <Text size="xs" c="dimmed">
                  Deletes copies no key owns and gives each key's copy its value back from Vault's version
                  history. A key whose value is gone from the history needs regenerating (only its hash is stored).
                </Text>
              </Group>
            )}
            {repair.error && (
              <Alert color="red" title="Repair failed" role="alert">
                {repair.error.message}
              </Alert>
            )}
            {result && (
              <Alert
                color={result.left.length ? "yellow" : "blue"}
                title="Repair done"
                role="status"
                withCloseButton
                onClose={() => setResult(null)}
              >
                Repaired: {result.repaired.length ? result.repaired.join(", ") : "nothing"}.
                {result.left.length > 0 &&
                  ` Still out of step: ${result.left.join(", ")} (regenerate a key whose value is gone; see the gateway's log).`}
              </Alert>
            )}
          </>
        )}
      </Stack>
    </Card>
  );
}

export function VaultPage() {
  const { session } = useSession();
  const vault = useQuery({
    queryKey: ["admin-vault"],
    queryFn: () => api<VaultStatus>("admin/vault"),
    refetchInterval: 30_000,
  });
  return (
    <Stack>
      <Title order={2}>Vault</Title>
      {vault.error && (
        <Alert color="red" title="Vault status could not be read" role="alert">
          {vault.error.message}
        </Alert>
      )}
      {vault.isLoading && (
        <Group justify="center" p="xl">
          <Loader aria-label="Loading Vault status" />
        </Group>
      )}
      {vault.data && !vault.data.enabled && (
        <Alert color="gray" title="No Vault configured" role="status">
          Secret references come from the environment. Set general_settings.key_management_system:
          hashicorp_vault and the HCP_VAULT_* variables to read them from Vault.
        </Alert>
      )}
      {vault.data?.enabled && <Connection vault={vault.data} />}
      {vault.data?.enabled && <Leases paths={vault.data.paths ?? []} />}
      {vault.data && <References references={vault.data.references} />}
      {session?.features.vault_mirror && <DriftCard />}
    </Stack>
  );
}
