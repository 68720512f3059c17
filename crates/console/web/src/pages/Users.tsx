import {
  Badge,
  Button,
  Checkbox,
  Group,
  MultiSelect,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api, query } from "../api";
import { capsBody, CapsFields, capsOf, limitsText, ModelsField, textOrNull, type CapsValues, NewIdField, useFields } from "../fields";
import { teamName, usePlaneRefresh } from "../plane";
import { useCanManage } from "../session";
import type { TeamList, UserInfo, UserList, UserRole } from "../types";
import {
  Actions,
  Confirm,
  type Confirmation,
  deleteAction,
  FormModal,
  ListState,
  ListTable,
  Pager,
  RawKey,
  type ShownKey,
  SpendCell,
} from "../widgets";

const PAGE_SIZE = 25;

export const USER_ROLES: { value: UserRole; label: string }[] = [
  { value: "proxy_admin", label: "admin" },
  { value: "proxy_admin_viewer", label: "admin viewer" },
  { value: "internal_user", label: "internal user" },
  { value: "internal_user_viewer", label: "internal user viewer" },
];

const roleLabel = (role: UserRole) => USER_ROLES.find((r) => r.value === role)?.label ?? role;
const userName = (user: UserInfo) => user.user_alias ?? user.user_email ?? user.user_id;

/** Every team, to choose a user's teams from. */
function useTeamOptions() {
  const teams = useQuery({
    queryKey: ["teams", "options"],
    queryFn: () => api<TeamList>(`v2/team/list${query({ page: 1, page_size: 1000 })}`),
  });
  return (teams.data?.teams ?? []).map((t) => ({ value: t.team_id, label: teamName(t) }));
}

interface UserFields {
  user_id: string;
  user_email: string;
  user_alias: string;
  user_role: UserRole;
  teams: string[];
  models: string[];
  caps: CapsValues;
  auto_create_key: boolean;
}

function UserForm({
  editing,
  onClose,
  onKey,
}: {
  editing: UserInfo | null;
  onClose: () => void;
  onKey: (key: ShownKey) => void;
}) {
  const [fields, set] = useFields<UserFields>(() => ({
    user_id: "",
    user_email: editing?.user_email ?? "",
    user_alias: editing?.user_alias ?? "",
    user_role: editing?.user_role ?? "internal_user",
    teams: [],
    models: editing?.models ?? [],
    caps: capsOf(editing),
    auto_create_key: true,
  }));
  const teams = useTeamOptions();
  const refresh = usePlaneRefresh();
  return (
    <FormModal
      opened
      onClose={onClose}
      title={editing ? `Edit ${userName(editing)}` : "Create a user"}
      submitLabel={editing ? "Save" : "Create user"}
      onSubmit={async () => {
        const body: Record<string, unknown> = {
          user_email: textOrNull(fields.user_email),
          user_alias: textOrNull(fields.user_alias),
          user_role: fields.user_role,
          models: fields.models,
          ...capsBody(fields.caps, !editing),
        };
        if (editing) {
          await api("user/update", { method: "POST", body: { ...body, user_id: editing.user_id } });
        } else {
          for (const name of ["user_email", "user_alias"]) if (body[name] === null) delete body[name];
          if (fields.user_id.trim()) body.user_id = fields.user_id.trim();
          body.teams = fields.teams;
          body.auto_create_key = fields.auto_create_key;
          const created = await api<{ key?: string | null }>("user/new", { method: "POST", body });
          if (created.key) onKey({ key: created.key });
        }
        refresh();
        onClose();
      }}
    >
      {!editing && (
        <NewIdField label="User id" value={fields.user_id} onChange={(v) => set("user_id", v)} />
      )}
      <TextInput
        label="Email"
        type="email"
        value={fields.user_email}
        onChange={(e) => set("user_email", e.currentTarget.value)}
      />
      <TextInput label="Name" value={fields.user_alias} onChange={(e) => set("user_alias", e.currentTarget.value)} />
      <Select
        label="Role"
        description="Admins manage everything, viewers read everything, internal users see their own keys and spend"
        data={USER_ROLES}
        value={fields.user_role}
        onChange={(value) => set("user_role", (value as UserRole | null) ?? "internal_user")}
        allowDeselect={false}
      />
      {!editing && (
        <MultiSelect
          label="Teams"
          data={teams}
          value={fields.teams}
          onChange={(value) => set("teams", value)}
          searchable
          clearable
        />
      )}
      <ModelsField value={fields.models} onChange={(value) => set("models", value)} />
      <CapsFields value={fields.caps} onChange={(value) => set("caps", value)} />
      {!editing && (
        <Checkbox
          label="Create a key for the user (shown once)"
          checked={fields.auto_create_key}
          onChange={(e) => set("auto_create_key", e.currentTarget.checked)}
        />
      )}
    </FormModal>
  );
}

export function UsersPage() {
  const canManage = useCanManage();
  const refresh = usePlaneRefresh();
  const [role, setRole] = useState<string | null>(null);
  const [team, setTeam] = useState<string | null>(null);
  const [page, setPage] = useState(1);
  const [form, setForm] = useState<{ editing: UserInfo | null } | null>(null);
  const [generated, setGenerated] = useState<ShownKey | null>(null);
  const [confirmation, setConfirmation] = useState<Confirmation | null>(null);
  const teams = useTeamOptions();
  const users = useQuery({
    queryKey: ["users", role, team, page],
    placeholderData: keepPreviousData,
    queryFn: () => api<UserList>(`user/list${query({ page, page_size: PAGE_SIZE, role, team })}`),
  });
  const rows = users.data?.users ?? [];
  const teamLabel = (id: string) => teams.find((t) => t.value === id)?.label ?? id;

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Users</Title>
        {canManage && <Button onClick={() => setForm({ editing: null })}>Create user</Button>}
      </Group>
      <Group grow preventGrowOverflow={false} wrap="wrap" align="flex-end">
        <Select
          label="Role"
          data={USER_ROLES}
          value={role}
          onChange={(value) => {
            setRole(value);
            setPage(1);
          }}
          clearable
          placeholder="Any"
          miw={160}
        />
        <Select
          label="Team"
          data={teams}
          value={team}
          onChange={(value) => {
            setTeam(value);
            setPage(1);
          }}
          clearable
          searchable
          placeholder="Any"
          miw={160}
        />
      </Group>
      <ListState loading={users.isLoading} error={users.error} empty={rows.length === 0} what="users">
        <ListTable label="Users" miw={820} columns={["User", "Role", "Teams", "Keys", "Spend / budget", "Limits"]} actions>
              {rows.map((user) => (
                <Table.Tr key={user.user_id} data-testid={`user-${user.user_id}`}>
                  <Table.Td>
                    <Text size="sm" fw={500}>
                      {userName(user)}
                    </Text>
                    <Text size="xs" c="dimmed" className="key-raw">
                      {user.user_id}
                      {user.user_email && user.user_alias ? ` · ${user.user_email}` : ""}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Badge color={user.user_role.startsWith("proxy_admin") ? "grape" : "gray"}>
                      {roleLabel(user.user_role)}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">{user.teams.length ? user.teams.map(teamLabel).join(", ") : "—"}</Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">{user.key_count ?? "—"}</Text>
                  </Table.Td>
                  <SpendCell spend={user.spend} budget={user.max_budget} />
                  <Table.Td>
                    <Text size="sm">{limitsText(user)}</Text>
                  </Table.Td>
                  <Table.Td>
                    {canManage && (
                      <Actions
                        name={userName(user)}
                        items={[
                          { label: "Edit", onClick: () => setForm({ editing: user }) },
                          deleteAction(
                            setConfirmation,
                            "Delete user",
                            `Delete ${userName(user)}? Their keys (and the keys' Vault copies) and team memberships go with them. This cannot be undone.`,
                            async () => {
                              await api("user/delete", { method: "POST", body: { user_ids: [user.user_id] } });
                              refresh();
                            },
                          ),
                        ]}
                      />
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
        </ListTable>
      </ListState>
      <Pager
        total={users.data?.total ?? 0}
        pages={users.data?.total_pages ?? 0}
        page={page}
        onChange={setPage}
        what="users"
      />
      {form && <UserForm editing={form.editing} onClose={() => setForm(null)} onKey={setGenerated} />}
      <RawKey generated={generated} onClose={() => setGenerated(null)} />
      <Confirm confirmation={confirmation} onClose={() => setConfirmation(null)} />
    </Stack>
  );
}
