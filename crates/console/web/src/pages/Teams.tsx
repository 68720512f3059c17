import { Badge, Button, Group, Select, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { keepPreviousData, useMutation, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api, query } from "../api";
import { capsBody, CapsFields, capsOf, limitsText, ModelsField, textOrNull, type CapsValues, NewIdField, useFields } from "../fields";
import { useCanManage, useSession } from "../session";
import { teamName, useOrgs, usePlaneRefresh } from "../plane";
import type { TeamInfo, TeamList } from "../types";
import {
  Actions,
  Confirm,
  type Confirmation,
  deleteAction,
  FormModal,
  ListState,
  ListTable,
  NameCell,
  Pager,
  SpendCell,
} from "../widgets";
import { Members } from "./Members";

const PAGE_SIZE = 25;

const TEAM_ROLES = [
  { value: "user", label: "member" },
  { value: "admin", label: "team admin" },
];

interface TeamFields {
  team_alias: string;
  team_id: string;
  organization_id: string;
  models: string[];
  caps: CapsValues;
}

function TeamForm({ editing, onClose }: { editing: TeamInfo | null; onClose: () => void }) {
  const [fields, set] = useFields<TeamFields>(() => ({
    team_alias: editing?.team_alias ?? "",
    team_id: "",
    organization_id: editing?.organization_id ?? "",
    models: editing?.models ?? [],
    caps: capsOf(editing),
  }));
  const orgs = useOrgs(true);
  const refresh = usePlaneRefresh();
  return (
    <FormModal
      opened
      onClose={onClose}
      title={editing ? `Edit ${teamName(editing)}` : "Create a team"}
      submitLabel={editing ? "Save" : "Create team"}
      onSubmit={async () => {
        const body: Record<string, unknown> = {
          team_alias: textOrNull(fields.team_alias),
          organization_id: textOrNull(fields.organization_id),
          models: fields.models,
          ...capsBody(fields.caps, !editing),
        };
        if (editing) {
          await api("team/update", { method: "POST", body: { ...body, team_id: editing.team_id } });
        } else {
          if (fields.team_id.trim()) body.team_id = fields.team_id.trim();
          if (body.organization_id === null) delete body.organization_id;
          await api("team/new", { method: "POST", body });
        }
        refresh();
        onClose();
      }}
    >
      <TextInput
        label="Name"
        required
        value={fields.team_alias}
        onChange={(e) => set("team_alias", e.currentTarget.value)}
      />
      {!editing && (
        <NewIdField label="Team id" value={fields.team_id} onChange={(v) => set("team_id", v)} />
      )}
      <Select
        label="Organization"
        data={[
          { value: "", label: "None" },
          ...(orgs.data ?? []).map((o) => ({ value: o.organization_id, label: o.organization_alias })),
        ]}
        value={fields.organization_id}
        onChange={(value) => set("organization_id", value ?? "")}
        allowDeselect={false}
        error={orgs.error ? `organizations could not be listed: ${orgs.error.message}` : null}
      />
      <ModelsField value={fields.models} onChange={(value) => set("models", value)} />
      <CapsFields value={fields.caps} onChange={(value) => set("caps", value)} />
    </FormModal>
  );
}

export function TeamsPage() {
  const canManage = useCanManage();
  const { session } = useSession();
  const internal = session?.role === "internal_user";
  const refresh = usePlaneRefresh();
  const [alias, setAlias] = useState("");
  const [org, setOrg] = useState<string | null>(null);
  const [page, setPage] = useState(1);
  const [filter] = useDebouncedValue(alias.trim(), 300);
  const [form, setForm] = useState<{ editing: TeamInfo | null } | null>(null);
  const [members, setMembers] = useState<string | null>(null);
  const [confirmation, setConfirmation] = useState<Confirmation | null>(null);
  const orgs = useOrgs(!internal);
  const teams = useQuery({
    queryKey: ["teams", filter, org, page, internal ? session?.user_id : null],
    placeholderData: keepPreviousData,
    queryFn: () =>
      api<TeamList>(
        `v2/team/list${query({
          page,
          page_size: PAGE_SIZE,
          team_alias: filter,
          organization_id: org,
          // Internal users may list only the teams they are in.
          user_id: internal ? session?.user_id : undefined,
        })}`,
      ),
  });
  const block = useMutation({
    mutationFn: (team: TeamInfo) =>
      api(team.blocked ? "team/unblock" : "team/block", { method: "POST", body: { team_id: team.team_id } }),
    onSuccess: refresh,
  });
  const orgName = (id: string | null) =>
    id ? (orgs.data?.find((o) => o.organization_id === id)?.organization_alias ?? id) : "—";
  const rows = teams.data?.teams ?? [];
  const shown = members ? rows.find((t) => t.team_id === members) : undefined;

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Teams</Title>
        {canManage && <Button onClick={() => setForm({ editing: null })}>Create team</Button>}
      </Group>
      <Group grow preventGrowOverflow={false} wrap="wrap" align="flex-end">
        <TextInput
          label="Search"
          description="Part of a team's name"
          value={alias}
          onChange={(e) => {
            setAlias(e.currentTarget.value);
            setPage(1);
          }}
          miw={200}
        />
        {!internal && (
          <Select
            label="Organization"
            data={(orgs.data ?? []).map((o) => ({ value: o.organization_id, label: o.organization_alias }))}
            value={org}
            onChange={(value) => {
              setOrg(value);
              setPage(1);
            }}
            clearable
            placeholder="Any"
            miw={180}
          />
        )}
      </Group>
      {block.error && (
        <Text c="red.9" role="alert">
          {block.error.message}
        </Text>
      )}
      <ListState loading={teams.isLoading} error={teams.error} empty={rows.length === 0} what="teams">
        <ListTable label="Teams" miw={860} columns={["Team", "Status", "Organization", "Members", "Models", "Spend / budget", "Limits"]} actions>
              {rows.map((team) => {
                const teamAdmin = internal && team.admins.includes(session?.user_id ?? "");
                return (
                  <Table.Tr key={team.team_id} data-testid={`team-${teamName(team)}`}>
                    <NameCell name={teamName(team)} id={team.team_id} />
                    <Table.Td>
                      <Badge color={team.blocked ? "red" : "teal"}>{team.blocked ? "Blocked" : "Active"}</Badge>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{orgName(team.organization_id)}</Text>
                    </Table.Td>
                    <Table.Td>
                      <Button variant="subtle" size="compact-sm" onClick={() => setMembers(team.team_id)}>
                        {team.members_with_roles.length} member{team.members_with_roles.length === 1 ? "" : "s"}
                      </Button>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{team.models.length ? team.models.join(", ") : "all"}</Text>
                    </Table.Td>
                    <SpendCell spend={team.spend} budget={team.max_budget} />
                    <Table.Td>
                      <Text size="sm">{limitsText(team)}</Text>
                    </Table.Td>
                    <Table.Td>
                      {canManage && (
                        <Actions
                          name={teamName(team)}
                          items={[
                            { label: "Edit", onClick: () => setForm({ editing: team }) },
                            { label: "Members", onClick: () => setMembers(team.team_id) },
                            { label: team.blocked ? "Unblock" : "Block", onClick: () => block.mutate(team) },
                            deleteAction(
                              setConfirmation,
                              "Delete team",
                              `Delete ${teamName(team)}? Its keys are deleted with it (and their Vault copies). This cannot be undone.`,
                              async () => {
                                await api("team/delete", { method: "POST", body: { team_ids: [team.team_id] } });
                                refresh();
                              },
                            ),
                          ]}
                        />
                      )}
                      {teamAdmin && (
                        <Button variant="default" size="compact-sm" onClick={() => setMembers(team.team_id)}>
                          Manage members
                        </Button>
                      )}
                    </Table.Td>
                  </Table.Tr>
                );
              })}
        </ListTable>
      </ListState>
      <Pager
        total={teams.data?.total ?? 0}
        pages={teams.data?.total_pages ?? 0}
        page={page}
        onChange={setPage}
        what="teams"
      />
      {form && <TeamForm editing={form.editing} onClose={() => setForm(null)} />}
      {shown && (
        <Members
          title={`Members of ${teamName(shown)}`}
          members={shown.members_with_roles}
          roles={TEAM_ROLES}
          canManage={canManage || (internal && shown.admins.includes(session?.user_id ?? ""))}
          routes={{ add: "team/member_add", update: "team/member_update", remove: "team/member_delete" }}
          target={{ team_id: shown.team_id }}
          note="Removing a member also deletes their keys of this team."
          onClose={() => setMembers(null)}
        />
      )}
      <Confirm confirmation={confirmation} onClose={() => setConfirmation(null)} />
    </Stack>
  );
}
