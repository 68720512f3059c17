// The Spend page's parts that read the request log (`/spend/logs`, `/global/spend/models`):
// both go through the permission table, so internal users see only their own requests.

import { BarChart } from "@mantine/charts";
import { Badge, Button, Card, Group, Select, Stack, Table, Text, TextInput, Title, Tooltip } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api, query } from "../api";
import { ListState, money } from "../widgets";

interface ModelSpend {
  model: string | null;
  total_spend: number;
  total_tokens: number;
}

/** One row of `/spend/logs` (LiteLLM_SpendLogs), the fields shown here. */
interface LogRow {
  request_id: string;
  api_key: string;
  spend: number;
  prompt_tokens: number;
  completion_tokens: number;
  startTime: string;
  endTime: string;
  model: string;
  model_group: string;
  user: string;
  team_id: string | null;
  status: "success" | "failure";
  metadata: {
    user_api_key_alias?: string | null;
    error_information?: { error_code?: string; error_message?: string };
  };
}

const PAGE_SIZE = 25;

const SINCE = [
  { value: "", label: "Any time" },
  { value: "3600", label: "Last hour" },
  { value: "86400", label: "Last day" },
  { value: "604800", label: "Last 7 days" },
  { value: "2592000", label: "Last 30 days" },
];

/** The models that cost most in the last 30 days. */
function useModelSpend() {
  return useQuery({
    queryKey: ["spend-models"],
    queryFn: () => api<ModelSpend[]>(`global/spend/models${query({ limit: 10 })}`),
  });
}

/** The models that cost most in the last 30 days, as a chart and a table. */
export function SpendByModel() {
  const models = useModelSpend();
  const rows = (models.data ?? []).map((m) => ({ ...m, model: m.model || "none (refused)" }));
  return (
    <Card withBorder>
      <Stack gap="xs">
        <Title order={3} size="h4">
          Spend by model (last 30 days)
        </Title>
        <ListState loading={models.isLoading} error={models.error} empty={rows.length === 0} what="requests">
          <div data-testid="model-chart">
            <BarChart
              h={220}
              data={rows}
              dataKey="model"
              series={[{ name: "total_spend", label: "Spend", color: "indigo.6" }]}
              valueFormatter={money}
            />
          </div>
          <div className="table-scroll" tabIndex={0}>
            <Table verticalSpacing={4} aria-label="Spend by model" miw={360}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Model</Table.Th>
                  <Table.Th>Spend</Table.Th>
                  <Table.Th>Tokens</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((m) => (
                  <Table.Tr key={m.model} data-testid={`model-spend-${m.model}`}>
                    <Table.Td>{m.model}</Table.Td>
                    <Table.Td>{money(m.total_spend)}</Table.Td>
                    <Table.Td>{m.total_tokens}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
        </ListState>
      </Stack>
    </Card>
  );
}

const latency = (row: LogRow) => {
  const ms = Date.parse(row.endTime) - Date.parse(row.startTime);
  return Number.isFinite(ms) ? `${ms} ms` : "—";
};

/** The recent requests, newest first, with filters. */
export function RequestLog() {
  const models = (useModelSpend().data ?? []).flatMap((m) => (m.model ? [m.model] : []));
  const [key, setKey] = useState("");
  const [team, setTeam] = useState("");
  const [user, setUser] = useState("");
  const [model, setModel] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [since, setSince] = useState("");
  const [page, setPage] = useState(1);
  const [text] = useDebouncedValue({ key: key.trim(), team: team.trim(), user: user.trim() }, 300);
  const filters = { ...text, model, status, since };
  const logs = useQuery({
    queryKey: ["spend-logs", filters, page],
    placeholderData: keepPreviousData,
    queryFn: () =>
      api<LogRow[]>(
        `spend/logs${query({
          api_key: filters.key,
          team_id: filters.team,
          user_id: filters.user,
          model: filters.model,
          status: filters.status,
          start_date: since ? new Date(Date.now() - Number(since) * 1000).toISOString() : undefined,
          page,
          page_size: PAGE_SIZE,
        })}`,
      ),
  });
  const rows = logs.data ?? [];
  const reset = <T,>(set: (value: T) => void) => (value: T) => {
    set(value);
    setPage(1);
  };
  return (
    <Card withBorder>
      <Stack gap="xs">
        <Title order={3} size="h4">
          Recent requests
        </Title>
        <Group grow preventGrowOverflow={false} wrap="wrap" align="flex-end">
          <TextInput label="Key" description="sk-… or its hash" value={key} onChange={(e) => reset(setKey)(e.currentTarget.value)} miw={160} />
          <TextInput label="Team id" value={team} onChange={(e) => reset(setTeam)(e.currentTarget.value)} miw={120} />
          <TextInput label="User id" value={user} onChange={(e) => reset(setUser)(e.currentTarget.value)} miw={120} />
          <Select label="Model" data={models} value={model} onChange={reset(setModel)} clearable placeholder="Any" miw={140} />
          <Select
            label="Status"
            data={[
              { value: "success", label: "succeeded" },
              { value: "failure", label: "failed" },
            ]}
            value={status}
            onChange={reset(setStatus)}
            clearable
            placeholder="Any"
            miw={120}
          />
          <Select label="Since" data={SINCE} value={since} onChange={(v) => reset(setSince)(v ?? "")} allowDeselect={false} miw={130} />
        </Group>
        <ListState
          loading={logs.isLoading}
          error={logs.error}
          empty={rows.length === 0 && page === 1}
          what="requests"
          emptyText={Object.values(filters).some(Boolean) ? "No request matches." : undefined}
        >
          <div className="table-scroll" tabIndex={0}>
            <Table verticalSpacing={4} aria-label="Recent requests" miw={900}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Time</Table.Th>
                  <Table.Th>Status</Table.Th>
                  <Table.Th>Model</Table.Th>
                  <Table.Th>Key</Table.Th>
                  <Table.Th>Team / user</Table.Th>
                  <Table.Th>Tokens (prompt + completion)</Table.Th>
                  <Table.Th>Spend</Table.Th>
                  <Table.Th>Latency</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((row) => {
                  const error = row.metadata.error_information;
                  return (
                    <Table.Tr key={row.request_id} data-testid="request-row">
                      <Table.Td className="nowrap">
                        <Text size="sm">{new Date(row.startTime).toLocaleString()}</Text>
                      </Table.Td>
                      <Table.Td>
                        {row.status === "success" ? (
                          <Badge color="teal">ok</Badge>
                        ) : (
                          <Tooltip label={error?.error_message ?? "failed"} multiline w={320}>
                            <Badge color="red">{error?.error_code ?? "failed"}</Badge>
                          </Tooltip>
                        )}
                      </Table.Td>
                      <Table.Td>
                        <Text size="sm">{row.model_group || "—"}</Text>
                        {row.model && (
                          <Text size="xs" c="dimmed">
                            {row.model}
                          </Text>
                        )}
                      </Table.Td>
                      <Table.Td>
                        <Text size="sm">{row.metadata.user_api_key_alias ?? "—"}</Text>
                        <Text size="xs" c="dimmed" className="key-raw">
                          {row.api_key ? `${row.api_key.slice(0, 12)}…` : "no key"}
                        </Text>
                      </Table.Td>
                      <Table.Td>
                        <Text size="sm">{row.team_id ?? "—"}</Text>
                        <Text size="xs" c="dimmed">
                          {row.user}
                        </Text>
                      </Table.Td>
                      <Table.Td>
                        {row.prompt_tokens} + {row.completion_tokens}
                      </Table.Td>
                      <Table.Td>{money(row.spend)}</Table.Td>
                      <Table.Td>{latency(row)}</Table.Td>
                    </Table.Tr>
                  );
                })}
              </Table.Tbody>
            </Table>
          </div>
          <Group justify="flex-end">
            <Button variant="default" size="xs" disabled={page === 1} onClick={() => setPage(page - 1)}>
              Newer
            </Button>
            <Button variant="default" size="xs" disabled={rows.length < PAGE_SIZE} onClick={() => setPage(page + 1)}>
              Older
            </Button>
          </Group>
        </ListState>
      </Stack>
    </Card>
  );
}
