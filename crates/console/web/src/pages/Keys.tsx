import {
  ActionIcon,
  Alert,
  Badge,
  Button,
  CopyButton,
  Group,
  Loader,
  Menu,
  Modal,
  Pagination,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  Tooltip,
  VisuallyHidden,
} from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, query } from "../api";
import { copiesQueryKey, CopyStatus, useCopies } from "../copies";
import { useCanManage, useSession } from "../session";
import type { GeneratedKey, KeyInfo, KeyList } from "../types";
import { KeyForm } from "./KeyForm";

const PAGE_SIZES = ["10", "25", "50", "100"];

/** A raw key (`sk-…`) or a key hash: looked up directly rather than filtered by alias. */
const looksLikeKey = (text: string) => /^sk-\S{4,}$/.test(text) || /^[0-9a-f]{64}$/.test(text);

function status(key: KeyInfo): { label: string; color: string } {
  if (key.blocked) return { label: "Blocked", color: "red" };
  if (key.expires && Date.parse(key.expires) <= Date.now()) return { label: "Expired", color: "gray" };
  return { label: "Active", color: "teal" };
}

const money = (value: number) => `$${value.toFixed(value < 1 ? 4 : 2)}`;

function limits(key: KeyInfo): string {
  const parts = [
    key.rpm_limit != null ? `${key.rpm_limit} rpm` : null,
    key.tpm_limit != null ? `${key.tpm_limit} tpm` : null,
    key.max_parallel_requests != null ? `${key.max_parallel_requests} parallel` : null,
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : "none";
}

/** The raw key of a generate or regenerate answer, shown this once with a copy button. */
function RawKey({ generated, onClose }: { generated: GeneratedKey | null; onClose: () => void }) {
  return (
    <Modal opened={generated !== null} onClose={onClose} title="Your new key" size="lg">
      {generated && (
        <Stack>
          <Alert color="yellow" role="status">
            This is the only time the key is shown. Copy it now: the gateway keeps only its hash
            {generated.vault_secret_name ? " (and its copy in Vault)" : ""}.
          </Alert>
          <Group wrap="nowrap" align="center">
            <Text className="key-raw" data-testid="raw-key" size="sm">
              {generated.key}
            </Text>
            <CopyButton value={generated.key}>
              {({ copied, copy }) => (
                <Button onClick={copy} variant={copied ? "light" : "filled"} size="xs">
                  {copied ? "Copied" : "Copy"}
                </Button>
              )}
            </CopyButton>
          </Group>
          <Group justify="flex-end">
            <Button onClick={onClose}>Done</Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}

interface Confirmation {
  title: string;
  message: string;
  action: string;
  color: string;
  run: () => Promise<unknown>;
}

function Confirm({ confirmation, onClose }: { confirmation: Confirmation | null; onClose: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const close = () => {
    setError(null);
    onClose();
  };
  return (
    <Modal opened={confirmation !== null} onClose={close} title={confirmation?.title}>
      {confirmation && (
        <Stack>
          <Text size="sm">{confirmation.message}</Text>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button
              color={confirmation.color}
              loading={busy}
              onClick={async () => {
                setBusy(true);
                setError(null);
                try {
                  await confirmation.run();
                  close();
                } catch (e) {
                  setError(e instanceof Error ? e.message : String(e));
                } finally {
                  setBusy(false);
                }
              }}
            >
              {confirmation.action}
            </Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}

export function KeysPage() {
  const canManage = useCanManage();
  const { session } = useSession();
  const mirrored = session?.features.vault_mirror ?? false;
  const queries = useQueryClient();
  const [search, setSearch] = useState("");
  const [team, setTeam] = useState("");
  const [user, setUser] = useState("");
  const [page, setPage] = useState(1);
  const [size, setSize] = useState("25");
  const [filters] = useDebouncedValue({ search: search.trim(), team: team.trim(), user: user.trim() }, 300);
  const [form, setForm] = useState<{ editing: KeyInfo | null } | null>(null);
  const [generated, setGenerated] = useState<GeneratedKey | null>(null);
  const [confirmation, setConfirmation] = useState<Confirmation | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const byKey = looksLikeKey(filters.search);
  const keys = useQuery({
    queryKey: ["keys", filters, page, size],
    placeholderData: keepPreviousData,
    queryFn: () =>
      api<KeyList>(
        `key/list${query({
          page,
          size,
          // A raw key (or its hash) finds that one key; anything else is an alias.
          key_hash: byKey ? filters.search : undefined,
          key_alias: byKey ? undefined : filters.search,
          team_id: filters.team,
          user_id: filters.user,
          return_full_object: true,
        })}`,
      ),
  });
  const names = (keys.data?.keys ?? []).map((k) => k.vault_secret_name).filter((n): n is string => !!n);
  const copies = useCopies(mirrored ? names : []);

  const refresh = () => {
    // Earlier searches are dropped rather than refetched: a search for a key that was just
    // regenerated or deleted would only find nothing.
    queries.removeQueries({ queryKey: ["keys"], type: "inactive" });
    void queries.invalidateQueries({ queryKey: ["keys"] });
    void queries.invalidateQueries({ queryKey: copiesQueryKey });
    void queries.invalidateQueries({ queryKey: ["vault-drift"] });
  };
  const post = (path: string, body: unknown) => api<GeneratedKey>(path, { method: "POST", body });
  const mutate = useMutation({
    mutationFn: async ({ path, body }: { path: string; body: unknown }) => post(path, body),
    onSuccess: refresh,
  });

  function regenerate(key: KeyInfo) {
    setConfirmation({
      title: "Regenerate key",
      message: `A new value replaces ${key.key_alias ?? key.key_name}. The old value stops working at once${
        key.vault_secret_name ? " and the Vault copy gets the new value" : ""
      }.`,
      action: "Regenerate",
      color: "orange",
      run: async () => {
        const result = await mutate.mutateAsync({ path: `key/${key.token}/regenerate`, body: {} });
        setGenerated(result);
      },
    });
  }

  function remove(key: KeyInfo) {
    setConfirmation({
      title: "Delete key",
      message: `Delete ${key.key_alias ?? key.key_name}? It stops working at once${
        key.vault_secret_name ? " and its Vault copy is deleted" : ""
      }. This cannot be undone.`,
      action: "Delete",
      color: "red",
      run: async () => {
        await mutate.mutateAsync({ path: "key/delete", body: { keys: [key.token] } });
        setNotice(`Deleted ${key.key_alias ?? key.key_name}.`);
        if (key.vault_secret_name) {
          void queries.invalidateQueries({ queryKey: [...copiesQueryKey, [key.vault_secret_name]] });
          setDeletedCopy(key.vault_secret_name);
        }
      },
    });
  }
  const [deletedCopy, setDeletedCopy] = useState<string | null>(null);
  const deleted = useCopies(deletedCopy ? [deletedCopy] : []);

  const total = keys.data?.total_count ?? 0;
  const rows = keys.data?.keys ?? [];

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Keys</Title>
        {canManage && <Button onClick={() => setForm({ editing: null })}>Create key</Button>}
      </Group>
      {notice && (
        <Alert color="green" role="status" withCloseButton onClose={() => setNotice(null)}>
          {notice}
          {deletedCopy && (
            <Text size="sm" component="span">
              {" "}
              Vault copy {deletedCopy}:{" "}
              {deleted.isLoading ? "checking…" : <CopyStatus copy={deleted.data?.[deletedCopy]} />}
            </Text>
          )}
        </Alert>
      )}
      <Group grow preventGrowOverflow={false} wrap="wrap" align="flex-end">
        <TextInput
          label="Search"
          description="An alias, a key (sk-…) or its hash"
          value={search}
          onChange={(e) => {
            setSearch(e.currentTarget.value);
            setPage(1);
          }}
          miw={200}
        />
        <TextInput
          label="Team"
          value={team}
          onChange={(e) => {
            setTeam(e.currentTarget.value);
            setPage(1);
          }}
          disabled={byKey}
          miw={140}
        />
        <TextInput
          label="User"
          value={user}
          onChange={(e) => {
            setUser(e.currentTarget.value);
            setPage(1);
          }}
          disabled={byKey}
          miw={140}
        />
      </Group>
      {keys.error && (
        <Alert color="red" title="Keys could not be listed" role="alert">
          {keys.error.message}
        </Alert>
      )}
      {copies.error && (
        <Alert color="orange" title="Vault copies could not be checked" role="alert">
          {copies.error.message}
        </Alert>
      )}
      {keys.isLoading ? (
        <Group justify="center" p="xl">
          <Loader aria-label="Loading keys" />
        </Group>
      ) : rows.length === 0 && !keys.error ? (
        <Text c="dimmed" ta="center" p="xl">
          {filters.search || filters.team || filters.user
            ? "No key matches."
            : "No keys yet." + (canManage ? " Create the first one." : "")}
        </Text>
      ) : (
        <div className="table-scroll">
          <Table striped highlightOnHover verticalSpacing="xs" aria-label="Keys" miw={960}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Key</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Team / user</Table.Th>
                <Table.Th>Models</Table.Th>
                <Table.Th>Spend / budget</Table.Th>
                <Table.Th>Limits</Table.Th>
                <Table.Th>Expires</Table.Th>
                {mirrored && <Table.Th>Vault copy</Table.Th>}
                <Table.Th>
                  <VisuallyHidden>Actions</VisuallyHidden>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((key) => {
                const state = status(key);
                const copy = key.vault_secret_name ? copies.data?.[key.vault_secret_name] : undefined;
                return (
                  <Table.Tr key={key.token} data-testid={`key-${key.key_alias ?? key.token}`}>
                    <Table.Td>
                      <Text size="sm" fw={500}>
                        {key.key_alias ?? "—"}
                      </Text>
                      <Text size="xs" c="dimmed" className="nowrap">
                        {key.key_name}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Badge color={state.color}>
                        {state.label}
                      </Badge>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{key.team_id ?? "—"}</Text>
                      <Text size="xs" c="dimmed">
                        {key.user_id ?? ""}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{key.models.length ? key.models.join(", ") : "all"}</Text>
                    </Table.Td>
                    <Table.Td className="nowrap">
                      <Text size="sm" data-testid="spend">
                        {money(key.spend)}
                        {key.max_budget != null ? ` / ${money(key.max_budget)}` : ""}
                      </Text>
                      {key.budget_duration && (
                        <Text size="xs" c="dimmed">
                          resets every {key.budget_duration}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{limits(key)}</Text>
                    </Table.Td>
                    <Table.Td className="nowrap">
                      <Text size="sm">{key.expires ? new Date(key.expires).toLocaleString() : "never"}</Text>
                    </Table.Td>
                    {mirrored && (
                      <Table.Td>
                        {key.vault_secret_name ? (
                          <>
                            <Text size="xs" className="key-raw">
                              {copy?.path ?? key.vault_secret_name}
                            </Text>
                            {copies.isLoading ? (
                              <Loader size="xs" aria-label="Checking the Vault copy" />
                            ) : (
                              <CopyStatus copy={copy} />
                            )}
                          </>
                        ) : (
                          <Text size="sm" c="dimmed">
                            not mirrored
                          </Text>
                        )}
                      </Table.Td>
                    )}
                    <Table.Td>
                      {canManage && (
                        <Menu position="bottom-end" withinPortal>
                          <Menu.Target>
                            <Tooltip label="Actions">
                              <ActionIcon variant="subtle" aria-label={`Actions for ${key.key_alias ?? key.key_name}`}>
                                ⋯
                              </ActionIcon>
                            </Tooltip>
                          </Menu.Target>
                          <Menu.Dropdown>
                            <Menu.Item onClick={() => setForm({ editing: key })}>Edit</Menu.Item>
                            <Menu.Item
                              onClick={() =>
                                mutate.mutate(
                                  { path: key.blocked ? "key/unblock" : "key/block", body: { key: key.token } },
                                  {
                                    onSuccess: () =>
                                      setNotice(`${key.blocked ? "Unblocked" : "Blocked"} ${key.key_alias ?? key.key_name}.`),
                                    onError: (e) => setNotice(`Failed: ${e.message}`),
                                  },
                                )
                              }
                            >
                              {key.blocked ? "Unblock" : "Block"}
                            </Menu.Item>
                            <Menu.Item onClick={() => regenerate(key)}>Regenerate</Menu.Item>
                            <Menu.Divider />
                            <Menu.Item color="red" onClick={() => remove(key)}>
                              Delete
                            </Menu.Item>
                          </Menu.Dropdown>
                        </Menu>
                      )}
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </div>
      )}
      {!byKey && total > 0 && (
        <Group justify="space-between">
          <Text size="sm" c="dimmed">
            {total} key{total === 1 ? "" : "s"}
          </Text>
          <Group>
            <Pagination
              total={keys.data?.total_pages ?? 1}
              value={page}
              onChange={setPage}
              size="sm"
              getControlProps={(control) => ({ "aria-label": `${control} page` })}
              getItemProps={(number) => ({ "aria-label": `page ${number}` })}
            />
            <Select
              aria-label="Keys per page"
              data={PAGE_SIZES}
              value={size}
              onChange={(value) => {
                setSize(value ?? "25");
                setPage(1);
              }}
              w={80}
              size="xs"
              allowDeselect={false}
            />
          </Group>
        </Group>
      )}
      {form && (
        <KeyForm
          opened
          editing={form.editing}
          onClose={() => setForm(null)}
          onSubmit={async (body) => {
            if (form.editing) {
              await mutate.mutateAsync({ path: "key/update", body: { ...body, key: form.editing.token } });
              setNotice(`Saved ${form.editing.key_alias ?? form.editing.key_name}.`);
            } else {
              setGenerated(await mutate.mutateAsync({ path: "key/generate", body }));
            }
            setForm(null);
          }}
        />
      )}
      <RawKey generated={generated} onClose={() => setGenerated(null)} />
      <Confirm confirmation={confirmation} onClose={() => setConfirmation(null)} />
    </Stack>
  );
}
