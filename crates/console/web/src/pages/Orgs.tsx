import { Button, Group, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useState } from "react";
import { api } from "../api";
import { capsBody, CapsFields, capsOf, limitsText, ModelsField, type CapsValues, NewIdField, useFields } from "../fields";
import { teamName, useOrgs, usePlaneRefresh } from "../plane";
import { useCanManage } from "../session";
import type { OrgInfo } from "../types";
import {
  Actions,
  Confirm,
  type Confirmation,
  deleteAction,
  FormModal,
  ListState,
  ListTable,
  NameCell,
  SpendCell,
} from "../widgets";
import { Members } from "./Members";

const ORG_ROLES = [
  { value: "internal_user", label: "internal user" },
  { value: "internal_user_viewer", label: "internal user viewer" },
  { value: "org_admin", label: "organization admin" },
];

interface OrgFields {
  organization_alias: string;
  organization_id: string;
  models: string[];
  caps: CapsValues;
}

function OrgForm({ editing, onClose }: { editing: OrgInfo | null; onClose: () => void }) {
  const [fields, set] = useFields<OrgFields>(() => ({
    organization_alias: editing?.organization_alias ?? "",
    organization_id: "",
    models: editing?.models ?? [],
    caps: capsOf(editing?.litellm_budget_table),
  }));
  const refresh = usePlaneRefresh();
  return (
    <FormModal
      opened
      onClose={onClose}
      title={editing ? `Edit ${editing.organization_alias}` : "Create an organization"}
      submitLabel={editing ? "Save" : "Create organization"}
      onSubmit={async () => {
        const body: Record<string, unknown> = {
          organization_alias: fields.organization_alias.trim(),
          models: fields.models,
          ...capsBody(fields.caps, !editing),
        };
        if (editing) {
          await api("organization/update", {
            method: "POST",
            body: { ...body, organization_id: editing.organization_id },
          });
        } else {
          if (fields.organization_id.trim()) body.organization_id = fields.organization_id.trim();
          await api("organization/new", { method: "POST", body });
        }
        refresh();
        onClose();
      }}
    >
      <TextInput
        label="Name"
        required
        value={fields.organization_alias}
        onChange={(e) => set("organization_alias", e.currentTarget.value)}
      />
      {!editing && (
        <NewIdField label="Organization id" value={fields.organization_id} onChange={(v) => set("organization_id", v)} />
      )}
      <ModelsField
        value={fields.models}
        onChange={(value) => set("models", value)}
        description="None selected: every model; its teams may use no others"
      />
      <CapsFields value={fields.caps} onChange={(value) => set("caps", value)} />
    </FormModal>
  );
}

export function OrgsPage() {
  const canManage = useCanManage();
  const refresh = usePlaneRefresh();
  const orgs = useOrgs(true);
  const [form, setForm] = useState<{ editing: OrgInfo | null } | null>(null);
  const [members, setMembers] = useState<string | null>(null);
  const [confirmation, setConfirmation] = useState<Confirmation | null>(null);
  const rows = orgs.data ?? [];
  const shown = members ? rows.find((o) => o.organization_id === members) : undefined;

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Organizations</Title>
        {canManage && <Button onClick={() => setForm({ editing: null })}>Create organization</Button>}
      </Group>
      <ListState loading={orgs.isLoading} error={orgs.error} empty={rows.length === 0} what="organizations">
        <ListTable label="Organizations" miw={760} columns={["Organization", "Teams", "Members", "Models", "Spend / budget", "Limits"]} actions>
              {rows.map((org) => {
                const budget = org.litellm_budget_table;
                return (
                  <Table.Tr key={org.organization_id} data-testid={`org-${org.organization_alias}`}>
                    <NameCell name={org.organization_alias} id={org.organization_id} />
                    <Table.Td>
                      <Text size="sm">{org.teams.length ? org.teams.map(teamName).join(", ") : "—"}</Text>
                    </Table.Td>
                    <Table.Td>
                      <Button variant="subtle" size="compact-sm" onClick={() => setMembers(org.organization_id)}>
                        {org.members.length} member{org.members.length === 1 ? "" : "s"}
                      </Button>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{org.models.length ? org.models.join(", ") : "all"}</Text>
                    </Table.Td>
                    <SpendCell spend={org.spend} budget={budget?.max_budget} />
                    <Table.Td>
                      <Text size="sm">{limitsText(budget)}</Text>
                    </Table.Td>
                    <Table.Td>
                      {canManage && (
                        <Actions
                          name={org.organization_alias}
                          items={[
                            { label: "Edit", onClick: () => setForm({ editing: org }) },
                            { label: "Members", onClick: () => setMembers(org.organization_id) },
                            deleteAction(
                              setConfirmation,
                              "Delete organization",
                              `Delete ${org.organization_alias}? The gateway refuses while it still has teams.`,
                              async () => {
                                await api("organization/delete", {
                                  method: "POST",
                                  body: { organization_ids: [org.organization_id] },
                                });
                                refresh();
                              },
                            ),
                          ]}
                        />
                      )}
                    </Table.Td>
                  </Table.Tr>
                );
              })}
        </ListTable>
      </ListState>
      {form && <OrgForm editing={form.editing} onClose={() => setForm(null)} />}
      {shown && (
        <Members
          title={`Members of ${shown.organization_alias}`}
          members={shown.members.map((m) => ({ user_id: m.user_id, user_email: m.user_email, role: m.user_role }))}
          roles={ORG_ROLES}
          canManage={canManage}
          routes={{
            add: "organization/member_add",
            update: "organization/member_update",
            remove: "organization/member_delete",
          }}
          target={{ organization_id: shown.organization_id }}
          onClose={() => setMembers(null)}
        />
      )}
      <Confirm confirmation={confirmation} onClose={() => setConfirmation(null)} />
    </Stack>
  );
}
