import { Select, SimpleGrid, TagsInput, TextInput } from "@mantine/core";
import { capsBody, CapsFields, capsOf, ModelsField, textOrNull, type CapsValues, useFields } from "../fields";
import type { KeyInfo } from "../types";
import { FormModal } from "../widgets";

const DURATIONS = [
  { value: "", label: "Never" },
  { value: "1h", label: "1 hour" },
  { value: "1d", label: "1 day" },
  { value: "7d", label: "7 days" },
  { value: "30d", label: "30 days" },
  { value: "90d", label: "90 days" },
  { value: "365d", label: "1 year" },
];

interface Fields {
  key_alias: string;
  models: string[];
  caps: CapsValues;
  duration: string;
  team_id: string;
  user_id: string;
  tags: string[];
}

function fieldsOf(key: KeyInfo | null): Fields {
  return {
    key_alias: key?.key_alias ?? "",
    models: key?.models ?? [],
    caps: capsOf(key),
    duration: "",
    team_id: key?.team_id ?? "",
    user_id: key?.user_id ?? "",
    tags: key?.tags ?? [],
  };
}

/** The request body: every field, with empty ones as null (update clears them). */
function bodyOf(fields: Fields, creating: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {
    key_alias: textOrNull(fields.key_alias),
    models: fields.models,
    ...capsBody(fields.caps, false),
    team_id: textOrNull(fields.team_id),
    user_id: textOrNull(fields.user_id),
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
  const [fields, set] = useFields<Fields>(() => fieldsOf(editing));

  return (
    <FormModal
      opened={opened}
      onClose={onClose}
      title={editing ? `Edit ${editing.key_alias ?? editing.key_name}` : "Create a key"}
      submitLabel={editing ? "Save" : "Create key"}
      onSubmit={() => onSubmit(bodyOf(fields, editing === null))}
    >
      <TextInput
        label="Alias"
        description="Also the name of the key's Vault copy"
        value={fields.key_alias}
        onChange={(e) => set("key_alias", e.currentTarget.value)}
      />
      <ModelsField value={fields.models} onChange={(value) => set("models", value)} />
      <CapsFields value={fields.caps} onChange={(value) => set("caps", value)} />
      <SimpleGrid cols={{ base: 1, xs: 2 }}>
        <Select
          label={editing ? "New expiry (from now)" : "Expires after"}
          data={editing ? [{ value: "", label: "Keep" }, ...DURATIONS.slice(1)] : DURATIONS}
          value={fields.duration}
          onChange={(value) => set("duration", value ?? "")}
          allowDeselect={false}
        />
        <TextInput label="Team" value={fields.team_id} onChange={(e) => set("team_id", e.currentTarget.value)} />
        <TextInput label="User" value={fields.user_id} onChange={(e) => set("user_id", e.currentTarget.value)} />
      </SimpleGrid>
      <TagsInput label="Tags" value={fields.tags} onChange={(value) => set("tags", value)} clearable />
    </FormModal>
  );
}
