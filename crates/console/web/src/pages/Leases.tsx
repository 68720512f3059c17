import { Badge, Card, Stack, Table, Text, Title } from "@mantine/core";
import { duration } from "../format";
import { ListTable } from "../widgets";

/** One `vault://` path as `/admin/vault` reports it: its lease or TTL, never a value or lease id. */
export interface PathStatus {
  path: string;
  fields: string[];
  age_secs: number | null;
  /** Seconds the values in use have left (a lease, or a TTL the secret states). */
  ttl_secs: number | null;
  leased: boolean;
  renewable: boolean;
  reissues: number;
  renewals: number;
  expired: boolean;
  deployments: string[];
  last_error: string | null;
}

function State({ path }: { path: PathStatus }) {
  if (path.expired) return <Badge color="red">expired</Badge>;
  if (path.last_error) return <Badge color="yellow">failing</Badge>;
  if (path.ttl_secs === null) return <Badge color="gray">no expiry</Badge>;
  return <Badge color="teal">valid</Badge>;
}

/** Every path read from Vault: the lease of its values, TTL left, renewals and re-issues. */
export function Leases({ paths }: { paths: PathStatus[] }) {
  return (
    <Card withBorder>
      <Stack gap="sm">
        <Title order={3} size="h4">
          Leases
        </Title>
        {paths.length === 0 ? (
          <Text c="dimmed">The config reads no vault:// paths.</Text>
        ) : (
          <ListTable
            label="Leases"
            miw={820}
            columns={["Path", "State", "Lease", "TTL left", "Renewals / re-issues", "Read", "Used by"]}
            striped={false}
          >
                {paths.map((p) => (
                  <Table.Tr key={p.path} data-testid={`lease-${p.path}`}>
                    <Table.Td>
                      <Text size="xs" className="key-raw">
                        {p.path}
                      </Text>
                      <Text size="xs" c="dimmed">
                        fields: {p.fields.join(", ")}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <State path={p} />
                      {p.last_error && (
                        <Text size="xs" c="red.9" role="alert">
                          {p.last_error}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{p.leased ? (p.renewable ? "renewable" : "not renewable") : "none"}</Text>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" data-testid="ttl-left">
                        {p.ttl_secs === null ? "—" : duration(p.ttl_secs)}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">
                        {p.renewals} / {p.reissues}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{p.age_secs === null ? "never" : `${duration(p.age_secs)} ago`}</Text>
                    </Table.Td>
                    <Table.Td>
                      <Text size="xs">{p.deployments.join(", ") || "—"}</Text>
                    </Table.Td>
                  </Table.Tr>
                ))}
          </ListTable>
        )}
      </Stack>
    </Card>
  );
}
