import { AreaChart, BarChart } from "@mantine/charts";
import { Alert, Card, Group, Loader, SegmentedControl, Stack, Table, Text, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api, query } from "../api";
import { useSession } from "../session";
import type { KeyInfo, KeyList } from "../types";
import { money } from "../widgets";
import { RequestLog, SpendByModel } from "./SpendLog";

interface Day {
  day: string;
  spend: number;
  prompt_tokens: number;
  completion_tokens: number;
  requests: number;
}

interface KeyDays {
  token: string;
  key_name: string;
  key_alias: string | null;
  team_id: string | null;
  spend: number;
  days: Day[];
}

/** Keys read to find the top spenders. */
const SCANNED = 1000;
/** Keys (or teams) drawn in the charts. */
const CHARTED = 5;
const COLORS = ["indigo.6", "teal.6", "orange.6", "grape.6", "cyan.6", "gray.6"];

const label = (key: { key_alias: string | null; key_name: string }) => key.key_alias ?? key.key_name;

/** One row per day, one column per series, for the charts. */
function byDay(series: { name: string; days: Day[] }[], value: (day: Day) => number) {
  const rows = new Map<string, Record<string, string | number>>();
  for (const s of series) {
    for (const day of s.days) {
      const row = rows.get(day.day) ?? { day: day.day };
      row[s.name] = ((row[s.name] as number | undefined) ?? 0) + value(day);
      rows.set(day.day, row);
    }
  }
  return [...rows.values()]
    .sort((a, b) => String(a.day).localeCompare(String(b.day)))
    .map((row) => {
      for (const s of series) row[s.name] ??= 0;
      return row;
    });
}

/** The keys' days summed per team and day (keys without a team under "no team"). */
function teams(keys: KeyDays[]): { name: string; days: Day[] }[] {
  const grouped = new Map<string, Map<string, Day>>();
  for (const key of keys) {
    const name = key.team_id ?? "no team";
    const days = grouped.get(name) ?? new Map<string, Day>();
    for (const d of key.days) {
      const sum = days.get(d.day) ?? { day: d.day, spend: 0, prompt_tokens: 0, completion_tokens: 0, requests: 0 };
      sum.spend += d.spend;
      sum.prompt_tokens += d.prompt_tokens;
      sum.completion_tokens += d.completion_tokens;
      sum.requests += d.requests;
      days.set(d.day, sum);
    }
    grouped.set(name, days);
  }
  return [...grouped.entries()].map(([name, days]) => ({
    name,
    days: [...days.values()].sort((a, b) => a.day.localeCompare(b.day)),
  }));
}

export function SpendPage() {
  const { session } = useSession();
  // Every key's daily spend is the whole gateway's: internal users get their own requests below.
  const perKey = session?.role !== "internal_user";
  const [grouping, setGrouping] = useState<"key" | "team">("key");
  const list = useQuery({
    queryKey: ["keys", "spenders"],
    queryFn: () => api<KeyList>(`key/list${query({ page: 1, size: SCANNED, return_full_object: true })}`),
  });
  const spenders: KeyInfo[] = [...(list.data?.keys ?? [])].sort((a, b) => b.spend - a.spend);
  const charted = spenders.filter((k) => k.spend > 0).slice(0, CHARTED);
  const daily = useQuery({
    queryKey: ["spend-daily", charted.map((k) => k.token)],
    enabled: perKey && charted.length > 0,
    queryFn: async () => {
      const search = new URLSearchParams();
      for (const key of charted) search.append("key", key.token);
      return (await api<{ keys: KeyDays[] }>(`admin/spend/daily?${search}`)).keys;
    },
  });
  const series =
    grouping === "key"
      ? (daily.data ?? []).map((k) => ({ name: label(k), days: k.days }))
      : teams(daily.data ?? []);
  const chartSeries = series.map((s, i) => ({ name: s.name, color: COLORS[i % COLORS.length] }));

  return (
    <Stack>
      <Title order={2}>Spend</Title>
      {list.error && (
        <Alert color="red" title="Keys could not be listed" role="alert">
          {list.error.message}
        </Alert>
      )}
      {daily.error && (
        <Alert color="red" title="Daily spend could not be read" role="alert">
          {daily.error.message}
        </Alert>
      )}
      {(list.isLoading || daily.isLoading) && (
        <Group justify="center" p="xl">
          <Loader aria-label="Loading spend" />
        </Group>
      )}
      {list.data && charted.length === 0 && (
        <Text c="dimmed" ta="center" p="xl">
          No spend recorded yet. Spend appears here once keys are used.
        </Text>
      )}
      <SpendByModel />
      {daily.data && charted.length > 0 && (
        <Card withBorder>
          <Stack>
            <Group justify="space-between">
              <Title order={3} size="h4">
                Daily spend of the top {charted.length} key{charted.length === 1 ? "" : "s"}
              </Title>
              <SegmentedControl
                aria-label="Group by"
                value={grouping}
                onChange={(value) => setGrouping(value as "key" | "team")}
                data={[
                  { value: "key", label: "By key" },
                  { value: "team", label: "By team" },
                ]}
              />
            </Group>
            <div data-testid="spend-chart">
              <AreaChart
                h={240}
                data={byDay(series, (d) => d.spend)}
                dataKey="day"
                series={chartSeries}
                valueFormatter={money}
                withLegend
                curveType="linear"
              />
            </div>
            <Title order={3} size="h4">
              Daily tokens
            </Title>
            <div data-testid="tokens-chart">
              <BarChart
                h={240}
                data={byDay(series, (d) => d.prompt_tokens + d.completion_tokens)}
                dataKey="day"
                series={chartSeries}
                type="stacked"
                withLegend
              />
            </div>
            <div className="table-scroll" tabIndex={0}>
              <Table verticalSpacing={4} aria-label="Daily spend" miw={560}>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Day</Table.Th>
                    <Table.Th>{grouping === "key" ? "Key" : "Team"}</Table.Th>
                    <Table.Th>Spend</Table.Th>
                    <Table.Th>Tokens (prompt + completion)</Table.Th>
                    <Table.Th>Requests</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {series.flatMap((s) =>
                    s.days.map((d, i) => (
                      <Table.Tr key={`${s.name}-${d.day}-${i}`} data-testid={`day-${s.name}-${d.day}`}>
                        <Table.Td>{d.day}</Table.Td>
                        <Table.Td>{s.name}</Table.Td>
                        <Table.Td>{money(d.spend)}</Table.Td>
                        <Table.Td>
                          {d.prompt_tokens} + {d.completion_tokens}
                        </Table.Td>
                        <Table.Td>{d.requests}</Table.Td>
                      </Table.Tr>
                    )),
                  )}
                </Table.Tbody>
              </Table>
            </div>
          </Stack>
        </Card>
      )}
      {list.data && spenders.length > 0 && (
        <Card withBorder>
          <Stack gap="xs">
            <Title order={3} size="h4">
              Top spenders
            </Title>
            {list.data.total_count > SCANNED && (
              <Text size="xs" c="dimmed">
                Among the first {SCANNED} of {list.data.total_count} keys.
              </Text>
            )}
            <div className="table-scroll" tabIndex={0}>
              <Table verticalSpacing={4} aria-label="Top spenders" miw={480}>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Key</Table.Th>
                    <Table.Th>Team</Table.Th>
                    <Table.Th>Spend</Table.Th>
                    <Table.Th>Budget</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {spenders.slice(0, 10).map((key) => (
                    <Table.Tr key={key.token} data-testid={`spender-${label(key)}`}>
                      <Table.Td>{label(key)}</Table.Td>
                      <Table.Td>{key.team_id ?? "—"}</Table.Td>
                      <Table.Td>{money(key.spend)}</Table.Td>
                      <Table.Td>{key.max_budget != null ? money(key.max_budget) : "none"}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </div>
          </Stack>
        </Card>
      )}
      <RequestLog />
    </Stack>
  );
}
