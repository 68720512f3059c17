import { Alert, Button, Group, Modal, Select, Stack, Table, Text, TextInput } from "@mantine/core";
import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../api";
import { memberRef, usePlaneRefresh } from "../plane";
import { errorText, ListTable } from "../widgets";

export interface Member {
  user_id: string;
  user_email: string | null;
  role: string;
}

/** Who is in a team or an organization and with which role; those who may change it do. */
export function Members({
  title,
  members,
  roles,
  canManage,
  routes,
  target,
  note,
  onClose,
}: {
  title: string;
  members: Member[];
  roles: { value: string; label: string }[];
  canManage: boolean;
  /** The add, update and delete routes (`team/member_add`…). */
  routes: { add: string; update: string; remove: string };
  /** The team's or organization's id field (`{"team_id": …}`), sent with every change. */
  target: Record<string, string>;
  note?: string;
  onClose: () => void;
}) {
  const refresh = usePlaneRefresh();
  const [who, setWho] = useState("");
  const [role, setRole] = useState(roles[0].value);
  const [error, setError] = useState<string | null>(null);
  const change = useMutation({
    mutationFn: ({ path, body }: { path: string; body: Record<string, unknown> }) =>
      api(path, { method: "POST", body: { ...target, ...body } }),
    onSuccess: () => {
      setError(null);
      refresh();
    },
    onError: (e) => setError(errorText(e)),
  });
  const label = (value: string) => roles.find((r) => r.value === value)?.label ?? value;
  return (
    <Modal opened onClose={onClose} title={title} size="lg">
      <Stack>
        {error && (
          <Alert color="red" title="The gateway refused" role="alert">
            {error}
          </Alert>
        )}
        {members.length === 0 ? (
          <Text c="dimmed">No members yet.</Text>
        ) : (
          <ListTable label={title} miw={420} columns={["User", "Role"]} actions striped={false}>
                {members.map((m) => (
                  <Table.Tr key={m.user_id} data-testid={`member-${m.user_id}`}>
                    <Table.Td>
                      <Text size="sm">{m.user_id}</Text>
                      {m.user_email && (
                        <Text size="xs" c="dimmed">
                          {m.user_email}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      {canManage ? (
                        <Select
                          aria-label={`Role of ${m.user_id}`}
                          data={roles}
                          value={m.role}
                          allowDeselect={false}
                          size="xs"
                          w={170}
                          onChange={(value) =>
                            value && change.mutate({ path: routes.update, body: { user_id: m.user_id, role: value } })
                          }
                        />
                      ) : (
                        <Text size="sm">{label(m.role)}</Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      {canManage && (
                        <Button
                          variant="subtle"
                          color="red"
                          size="compact-sm"
                          aria-label={`Remove ${m.user_id}`}
                          onClick={() => change.mutate({ path: routes.remove, body: { user_id: m.user_id } })}
                        >
                          Remove
                        </Button>
                      )}
                    </Table.Td>
                  </Table.Tr>
                ))}
          </ListTable>
        )}
        {canManage && (
          <form
            onSubmit={(event) => {
              event.preventDefault();
              if (!who.trim()) return;
              change.mutate(
                { path: routes.add, body: { member: { ...memberRef(who), role } } },
                { onSuccess: () => setWho("") },
              );
            }}
          >
            <Group align="flex-end" wrap="wrap">
              <TextInput
                label="Add a member"
                description="A user id or an email (a new user is created)"
                value={who}
                onChange={(e) => setWho(e.currentTarget.value)}
                miw={220}
              />
              <Select
                label="Role"
                data={roles}
                value={role}
                onChange={(value) => setRole(value ?? roles[0].value)}
                allowDeselect={false}
                w={170}
              />
              <Button type="submit" loading={change.isPending}>
                Add
              </Button>
            </Group>
          </form>
        )}
        {note && (
          <Text size="xs" c="dimmed">
            {note}
          </Text>
        )}
      </Stack>
    </Modal>
  );
}
