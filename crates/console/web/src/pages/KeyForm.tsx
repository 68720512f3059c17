import {
  Alert,
  Button,
  Group,
  Modal,
  MultiSelect,
  NumberInput,
  Select,
  SimpleGrid,
  Stack,
  TagsInput,
  TextInput,
} from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api } from "../api";
import type { KeyInfo, ModelsStatus } from "../types";

const DURATIONS = [
  { value: "", label: "Never" },
  { value: "1h", label: "1 hour" },
  { value: "1d", label: "1 day" },
  { value: "7d", label: "7 days" },
  { value: "30d", label: "30 days" },
  { value: "90d", label: "90 days" },
  { value: "365d", label: "1 year" },
];

const BUDGET_PERIODS = [
  { value: "", label: "No reset" },
  { value: "1d", label: "Daily" },
  { value: "7d", label: "Weekly" },
  { value: "30d", label: "Monthly (30 days)" },
];

interface Fields {
  key_alias: string;
  models: string[];
  max_budget: number | string;
  budget_duration: string;
  rpm_limit: number | string;
  tpm_limit: number | string;
  max_parallel_requests: number | string;
  duration: string;
  team_id: string;
  user_id: string;
  tags: string[];
}

function fieldsOf(key: KeyInfo | null): Fields {
  return {
    key_alias: key?.key_alias ?? "",
    models: key?.models ?? [],
    max_budget: key?.max_budget ?? "",
    budget_duration: key?.budget_duration ?? "",
    rpm_limit: key?.rpm_limit ?? "",
    tpm_limit: key?.tpm_limit ?? "",
    max_parallel_requests: key?.max_parallel_requests ?? "",
    duration: "",
    team_id: key?.team_id ?? "",
    user_id: key?.user_id ?? "",
    tags: key?.tags ?? [],
  };
}

const number = (value: number | string) => (value === "" ? null : Number(value));
const text = (value: string) => (value.trim() === "" ? null : value.trim());

/** The request body: every field, with empty ones as null (update clears them). */
function bodyOf(fields: Fields, creating: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {
    key_alias: text(fields.key_alias),
    models: fields.models,
    max_budget: number(fields.max_budget),
    budget_duration: text(fields.budget_duration),
    rpm_limit: number(fields.rpm_limit),
    tpm_limit: number(fields.tpm_limit),
    max_parallel_requests: number(fields.max_parallel_requests),
    team_id: text(fields.team_id),
    user_id: text(fields.user_id),
    tags: fields.tags,
  };
  // Expiry: on create, none means never; on edit, none keeps the current expiry.
  if (fields.duration) body.duration = fields.duration;
  if (creating) {
    for (const name of Object.keys(body)) if (body[name] === null) delete body[name];
  }
  return body;
}

export function KeyForm({
  editing,
  opened,
  onClose,
  onSubmit,
}: {
  /** The key being edited; `null` to create one. */
  editing: KeyInfo | null;
  opened: boolean;
  onClose: () => void;
  onSubmit: (body: Record<string, unknown>) => Promise<void>;
}) {
  const [fields, setFields] = useState<Fields>(() => fieldsOf(editing));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const models = useQuery({
    queryKey: ["admin-models"],
    queryFn: () => api<ModelsStatus>("admin/models"),
  });
  const set = <K extends keyof Fields>(name: K, value: Fields[K]) =>
    setFields((current) => ({ ...current, [name]: value }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onSubmit(bodyOf(fields, editing === null));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  const modelOptions = Array.from(
    new Set([...(models.data?.models.map((m) => m.model_name) ?? []), ...fields.models]),
  );

  return (
    <Modal
      opened={opened}
      onClose={onClose}
      title={editing ? `Edit ${editing.key_alias ?? editing.key_name}` : "Create a key"}
      size="lg"
    >
      <form onSubmit={submit}>
        <Stack>
          {error && (
            <Alert color="red" title="The gateway refused" role="alert">
              {error}
            </Alert>
          )}
          <TextInput
            label="Alias"
            description="Also the name of the key's Vault copy"
            value={fields.key_alias}
            onChange={(e) => set("key_alias", e.currentTarget.value)}
          />
          <MultiSelect
            label="Models"
            description="None selected: every model"
            data={modelOptions}
            value={fields.models}
            onChange={(value) => set("models", value)}
            searchable
            clearable
            error={models.error ? `models could not be listed: ${models.error.message}` : null}
          />
          <SimpleGrid cols={{ base: 1, xs: 2 }}>
            <NumberInput
              label="Budget (USD)"
              min={0}
              decimalScale={4}
              value={fields.max_budget}
              onChange={(value) => set("max_budget", value)}
            />
            <Select
              label="Budget resets"
              data={BUDGET_PERIODS}
              value={fields.budget_duration}
              onChange={(value) => set("budget_duration", value ?? "")}
              allowDeselect={false}
            />
            <NumberInput
              label="Requests per minute"
              min={0}
              allowDecimal={false}
              value={fields.rpm_limit}
              onChange={(value) => set("rpm_limit", value)}
            />
            <NumberInput
              label="Tokens per minute"
              min={0}
              allowDecimal={false}
              value={fields.tpm_limit}
              onChange={(value) => set("tpm_limit", value)}
            />
            <NumberInput
              label="Parallel requests"
              min={0}
              allowDecimal={false}
              value={fields.max_parallel_requests}
              onChange={(value) => set("max_parallel_requests", value)}
            />
            <Select
              label={editing ? "New expiry (from now)" : "Expires after"}
              data={editing ? [{ value: "", label: "Keep" }, ...DURATIONS.slice(1)] : DURATIONS}
              value={fields.duration}
              onChange={(value) => set("duration", value ?? "")}
              allowDeselect={false}
            />
            <TextInput
              label="Team"
              value={fields.team_id}
              onChange={(e) => set("team_id", e.currentTarget.value)}
            />
            <TextInput
              label="User"
              value={fields.user_id}
              onChange={(e) => set("user_id", e.currentTarget.value)}
            />
          </SimpleGrid>
          <TagsInput
            label="Tags"
            value={fields.tags}
            onChange={(value) => set("tags", value)}
            clearable
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy}>
              {editing ? "Save" : "Create key"}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
