import { Alert, Badge, Card, Group, Loader, Stack, Table, Text, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { api } from "../api";
import type { DeploymentStatus, ModelGroupStatus, ModelsStatus } from "../types";

const HEALTH: Record<DeploymentStatus["health"], { label: string; color: string }> = {
  healthy: { label: "healthy", color: "teal" },
  failing: { label: "failing", color: "yellow" },
  cooling_down: { label: "cooling down", color: "red" },
  unused: { label: "no requests yet", color: "gray" },
  mock: { label: "mock answer", color: "gray" },
};

const percent = (rate: number | null) => (rate === null ? "—" : `${(rate * 100).toFixed(1)}%`);

function ErrorRate({ group, windowSecs }: { group: ModelGroupStatus; windowSecs: number | null }) {
  const r = group.requests;
  return (
    <Text size="sm" data-testid="error-rate">
      {windowSecs === null
        ? `${percent(r.error_rate)} of ${r.total} since the start`
        : `${percent(r.recent_error_rate)} of ${r.recent_total} in the last ${Math.max(1, Math.round(windowSecs / 60))} min · ${percent(r.error_rate)} of ${r.total} since the start`}
    </Text>
  );
}

function Deployments({ group }: { group: ModelGroupStatus }) {
  return (
    <div className="table-scroll" tabIndex={0}>
      <Table verticalSpacing="xs" miw={820} aria-label={`Deployments of ${group.model_name}`}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Deployment</Table.Th>
            <Table.Th>Provider</Table.Th>
            <Table.Th>Health</Table.Th>
            <Table.Th>Latency</Table.Th>
            <Table.Th>In flight</Table.Th>
            <Table.Th>Failures (last minute)</Table.Th>
            <Table.Th>Key</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {group.deployments.map((d) => {
            const health = HEALTH[d.health];
            return (
              <Table.Tr key={d.id} data-testid={`deployment-${d.id}`}>
                <Table.Td>
                  <Text size="sm" fw={500}>
                    {d.id}
                  </Text>
                  <Text size="xs" c="dimmed" className="key-raw">
                    {d.upstream_model}
                    {d.api_base ? ` · ${d.api_base}` : ""}
                  </Text>
                </Table.Td>
                <Table.Td>{d.provider}</Table.Td>
                <Table.Td>
                  <Badge color={health.color} data-testid="health">
                    {health.label}
                  </Badge>
                  {d.cooldown_remaining_secs !== null && (
                    <Text size="xs" c="dimmed">
                      back in {Math.ceil(d.cooldown_remaining_secs)} s
                    </Text>
                  )}
                </Table.Td>
                <Table.Td className="nowrap">{d.latency_ms === null ? "—" : `${d.latency_ms.toFixed(1)} ms`}</Table.Td>
                <Table.Td>{d.in_flight}</Table.Td>
                <Table.Td>
                  {d.failures_in_window}
                  {d.last_failure_secs_ago !== null && (
                    <Text size="xs" c="dimmed">
                      last {d.last_failure_secs_ago} s ago
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>
                  <Text size="xs" className="key-raw">
                    {d.api_key ?? "none"}
                  </Text>
                </Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
    </div>
  );
}

export function ModelsPage() {
  const models = useQuery({
    queryKey: ["admin-models"],
    queryFn: () => api<ModelsStatus>("admin/models"),
    refetchInterval: 15_000,
  });
  const data = models.data;
  return (
    <Stack>
      <Title order={2}>Models</Title>
      {models.error && (
        <Alert color="red" title="Models could not be read" role="alert">
          {models.error.message}
        </Alert>
      )}
      {models.isLoading && (
        <Group justify="center" p="xl">
          <Loader aria-label="Loading models" />
        </Group>
      )}
      {data && (
        <Text size="sm" c="dimmed">
          Routing: {data.routing_strategy}. A deployment that fails more than {data.allowed_fails} times in{" "}
          {data.failure_window_secs} s sits out {data.cooldown_time_secs} s. Errors are answers of 429 or 5xx.
        </Text>
      )}
      {data && data.models.length === 0 && (
        <Text c="dimmed" ta="center" p="xl">
          No models in the config's model_list.
        </Text>
      )}
      {data?.models.map((group) => (
        <Card key={group.model_name} withBorder padding="md" data-testid={`model-${group.model_name}`}>
          <Stack gap="xs">
            <Group justify="space-between">
              <Title order={3} size="h4">
                {group.model_name}
              </Title>
              <ErrorRate group={group} windowSecs={data.window_secs} />
            </Group>
            <Deployments group={group} />
          </Stack>
        </Card>
      ))}
    </Stack>
  );
}
