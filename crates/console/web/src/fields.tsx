// Form fields shared by the keys, teams, users and organizations forms.

import { MultiSelect, NumberInput, Select, SimpleGrid, TextInput } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "./api";
import { useSession } from "./session";
import type { Caps, ModelsStatus } from "./types";

export const BUDGET_PERIODS = [
  { value: "", label: "No reset" },
  { value: "1d", label: "Daily" },
  { value: "7d", label: "Weekly" },
  { value: "30d", label: "Monthly (30 days)" },
];

/** Limits as the form holds them: empty text for none. */
export interface CapsValues {
  max_budget: number | string;
  budget_duration: string;
  rpm_limit: number | string;
  tpm_limit: number | string;
  max_parallel_requests: number | string;
}

export function capsOf(caps: Partial<Caps> | null | undefined): CapsValues {
  return {
    max_budget: caps?.max_budget ?? "",
    budget_duration: caps?.budget_duration ?? "",
    rpm_limit: caps?.rpm_limit ?? "",
    tpm_limit: caps?.tpm_limit ?? "",
    max_parallel_requests: caps?.max_parallel_requests ?? "",
  };
}

export const numberOrNull = (value: number | string) => (value === "" ? null : Number(value));
export const textOrNull = (value: string) => (value.trim() === "" ? null : value.trim());

/** The request fields of the limits; on create, unset ones are left out. */
export function capsBody(values: CapsValues, creating: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {
    max_budget: numberOrNull(values.max_budget),
    budget_duration: textOrNull(values.budget_duration),
    rpm_limit: numberOrNull(values.rpm_limit),
    tpm_limit: numberOrNull(values.tpm_limit),
    max_parallel_requests: numberOrNull(values.max_parallel_requests),
  };
  if (creating) for (const name of Object.keys(body)) if (body[name] === null) delete body[name];
  return body;
}

/** `10 rpm, 1000 tpm`, or `none`. */
export function limitsText(caps: Partial<Caps> | null | undefined): string {
  const parts = [
    caps?.rpm_limit != null ? `${caps.rpm_limit} rpm` : null,
    caps?.tpm_limit != null ? `${caps.tpm_limit} tpm` : null,
    caps?.max_parallel_requests != null ? `${caps.max_parallel_requests} parallel` : null,
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : "none";
}

export function CapsFields({ value, onChange }: { value: CapsValues; onChange: (next: CapsValues) => void }) {
  const set = <K extends keyof CapsValues>(name: K, v: CapsValues[K]) => onChange({ ...value, [name]: v });
  return (
    <SimpleGrid cols={{ base: 1, xs: 2 }}>
      <NumberInput
        label="Budget (USD)"
        min={0}
        decimalScale={4}
        value={value.max_budget}
        onChange={(v) => set("max_budget", v)}
      />
      <Select
        label="Budget resets"
        data={BUDGET_PERIODS}
        value={value.budget_duration}
        onChange={(v) => set("budget_duration", v ?? "")}
        allowDeselect={false}
      />
      <NumberInput
        label="Requests per minute"
        min={0}
        allowDecimal={false}
        value={value.rpm_limit}
        onChange={(v) => set("rpm_limit", v)}
      />
      <NumberInput
        label="Tokens per minute"
        min={0}
        allowDecimal={false}
        value={value.tpm_limit}
        onChange={(v) => set("tpm_limit", v)}
      />
      <NumberInput
        label="Parallel requests"
        min={0}
        allowDecimal={false}
        value={value.max_parallel_requests}
        onChange={(v) => set("max_parallel_requests", v)}
      />
    </SimpleGrid>
  );
}

/** The gateway's model names (admins and viewers may read them; others type names). */
export function useModelNames(): { names: string[]; error: Error | null } {
  const { session } = useSession();
  const models = useQuery({
    queryKey: ["admin-models"],
    enabled: session?.role !== "internal_user",
    queryFn: () => api<ModelsStatus>("admin/models"),
  });
  return { names: models.data?.models.map((m) => m.model_name) ?? [], error: models.error };
}

export function ModelsField({
  value,
  onChange,
  description = "None selected: every model",
}: {
  value: string[];
  onChange: (next: string[]) => void;
  description?: string;
}) {
  const models = useModelNames();
  return (
    <MultiSelect
      label="Models"
      description={description}
      data={Array.from(new Set([...models.names, ...value]))}
      value={value}
      onChange={onChange}
      searchable
      clearable
      error={models.error ? `models could not be listed: ${models.error.message}` : null}
    />
  );
}

/** A form's fields and a setter of one of them. */
export function useFields<T extends object>(initial: () => T) {
  const [fields, setFields] = useState<T>(initial);
  const set = <K extends keyof T>(name: K, value: T[K]) => setFields((current) => ({ ...current, [name]: value }));
  return [fields, set] as const;
}

/** The id of a new team, user or organization: the caller's choice, or the gateway's. */
export function NewIdField({ label, value, onChange }: { label: string; value: string; onChange: (v: string) => void }) {
  return (
    <TextInput
      label={label}
      description="Left empty: the gateway picks one"
      value={value}
      onChange={(e) => onChange(e.currentTarget.value)}
    />
  );
}
