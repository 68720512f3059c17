import {
  Alert,
  Badge,
  Button,
  Group,
  Loader,
  Pagination,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  VisuallyHidden,
} from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, query } from "../api";
import { copiesQueryKey, CopyStatus, useCopies } from "../copies";
import { useCanManage, useSession } from "../session";
import type { GeneratedKey, KeyInfo, KeyList } from "../types";
import { Actions, Confirm, money, RawKey, type Confirmation } from "../widgets";
import { limitsText } from "../fields";
import { KeyForm } from "./KeyForm";

const PAGE_SIZES = ["10", "25", "50", "100"];

/** A raw key (`sk-…`) or a key hash: looked up directly rather than filtered by alias. */
const looksLikeKey = (text: string) => /^sk-\S{4,}$/.test(text) || /^[0-9a-f]{64}$/.test(text);

function status(key: KeyInfo): { label: string; color: string } {
  if (key.blocked) return { label: "Blocked", color: "red" };
  if (key.expires && Date.parse(key.expires) <= Date.now()) return { label: "Expired", color: "gray" };
  return { label: "Active", color: "teal" };
}



export function KeysPage() {
  const canManage = useCanManage();
  const { session } = useSession();
  // Internal users see their keys, not the gateway's Vault (the admin routes refuse them).
  const mirrored = (session?.features.vault_mirror ?? false) && session?.role !== "internal_user";
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
        <div className="table-scroll" tabIndex={0}>
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
                      <Text size="sm">{limitsText(key)}</Text>
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
                        <Actions
                          name={key.key_alias ?? key.key_name}
                          items={[
                            { label: "Edit", onClick: () => setForm({ editing: key }) },
                            {
                              label: key.blocked ? "Unblock" : "Block",
                              onClick: () =>
                                mutate.mutate(
                                  { path: key.blocked ? "key/unblock" : "key/block", body: { key: key.token } },
                                  {
                                    onSuccess: () =>
                                      setNotice(`${key.blocked ? "Unblocked" : "Blocked"} ${key.key_alias ?? key.key_name}.`),
                                    onError: (e) => setNotice(`Failed: ${e.message}`),
                                  },
                                ),
                            },
                            { label: "Regenerate", onClick: () => regenerate(key) },
                            { label: "Delete", color: "red", onClick: () => remove(key) },
                          ]}
                        />
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
