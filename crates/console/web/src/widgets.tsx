// Small pieces every page uses, built from the component library's widgets.

import {
  ActionIcon,
  Alert,
  Button,
  CopyButton,
  Group,
  Loader,
  Menu,
  Modal,
  Pagination,
  Stack,
  Table,
  Text,
  Tooltip,
  VisuallyHidden,
} from "@mantine/core";
import { Fragment, useState, type ReactNode } from "react";

export const money = (value: number) => `$${value.toFixed(value < 1 ? 4 : 2)}`;

export const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** A raw key of an answer (generate, regenerate, a new user's key), shown this once. */
export interface ShownKey {
  key: string;
  vault_secret_name?: string | null;
}

/** The raw key, shown this once with a copy button. */
export function RawKey({ generated, onClose }: { generated: ShownKey | null; onClose: () => void }) {
  return (
    <Modal opened={generated !== null} onClose={onClose} title="Your new key" size="lg">
      {generated && (
        <Stack>
          <Alert color="yellow" role="status">
            This is the only time the key is shown. Copy it now: the gateway keeps only its hash
            {generated.vault_secret_name ? " (and its copy in Vault)" : ""}.
          </Alert>
          <Group wrap="nowrap" align="center">
            <Text className="key-raw" data-testid="raw-key" size="sm">
              {generated.key}
            </Text>
            <CopyButton value={generated.key}>
              {({ copied, copy }) => (
                <Button onClick={copy} variant={copied ? "light" : "filled"} size="xs">
                  {copied ? "Copied" : "Copy"}
                </Button>
              )}
            </CopyButton>
          </Group>
          <Group justify="flex-end">
            <Button onClick={onClose}>Done</Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}

export interface Confirmation {
  title: string;
  message: string;
  action: string;
  color: string;
  run: () => Promise<unknown>;
}

/** Asks before a change that cannot be undone; the gateway's refusal is shown in the dialog. */
export function Confirm({ confirmation, onClose }: { confirmation: Confirmation | null; onClose: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const close = () => {
    setError(null);
    onClose();
  };
  return (
    <Modal opened={confirmation !== null} onClose={close} title={confirmation?.title}>
      {confirmation && (
        <Stack>
          <Text size="sm">{confirmation.message}</Text>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button
              color={confirmation.color}
              loading={busy}
              onClick={async () => {
                setBusy(true);
                setError(null);
                try {
                  await confirmation.run();
                  close();
                } catch (e) {
                  setError(errorText(e));
                } finally {
                  setBusy(false);
                }
              }}
            >
              {confirmation.action}
            </Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}

/** Loading, the API's error, or an empty list's message: what a page shows instead of a table. */
export function ListState({
  loading,
  error,
  empty,
  what,
  emptyText,
  children,
}: {
  loading: boolean;
  error: Error | null;
  empty: boolean;
  /** `teams`, `users`…: for the loader's and the error's wording. */
  what: string;
  /** Instead of `No <what> yet.` (a filtered list: nothing matches). */
  emptyText?: string;
  children: ReactNode;
}) {
  if (loading) {
    return (
      <Group justify="center" p="xl">
        <Loader aria-label={`Loading ${what}`} />
      </Group>
    );
  }
  if (error) {
    return (
      <Alert color="red" title={`The ${what} could not be listed`} role="alert">
        {error.message}
      </Alert>
    );
  }
  if (empty) {
    return (
      <Text c="dimmed" ta="center" p="xl">
        {emptyText ?? `No ${what} yet.`}
      </Text>
    );
  }
  return <>{children}</>;
}

/** A modal form: its fields, the gateway's refusal in place, Cancel and the submit button. */
export function FormModal({
  title,
  opened,
  onClose,
  onSubmit,
  submitLabel,
  children,
}: {
  title: string;
  opened: boolean;
  onClose: () => void;
  onSubmit: () => Promise<void>;
  submitLabel: string;
  children: ReactNode;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <Modal opened={opened} onClose={onClose} title={title} size="lg">
      <form
        onSubmit={async (event) => {
          event.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await onSubmit();
          } catch (e) {
            setError(errorText(e));
          } finally {
            setBusy(false);
          }
        }}
      >
        <Stack>
          {error && (
            <Alert color="red" title="The gateway refused" role="alert">
              {error}
            </Alert>
          )}
          {children}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy}>
              {submitLabel}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

export interface Action {
  label: string;
  onClick: () => void;
  /** `red` for a destructive action (set apart below a divider). */
  color?: string;
}

/** The actions menu of one row (`⋯`), named for screen readers after the row's object. */
export function Actions({ name, items }: { name: string; items: Action[] }) {
  return (
    <Menu position="bottom-end" withinPortal>
      <Menu.Target>
        <Tooltip label="Actions">
          <ActionIcon variant="subtle" aria-label={`Actions for ${name}`}>
            ⋯
          </ActionIcon>
        </Tooltip>
      </Menu.Target>
      <Menu.Dropdown>
        {items.map((item) => (
          <Fragment key={item.label}>
            {item.color === "red" && <Menu.Divider />}
            <Menu.Item color={item.color} onClick={item.onClick}>
              {item.label}
            </Menu.Item>
          </Fragment>
        ))}
      </Menu.Dropdown>
    </Menu>
  );
}

/** Pages of a list (shown when there is more than one), with screen-reader names. */
export function Pager({
  total,
  pages,
  page,
  onChange,
  what,
}: {
  total: number;
  pages: number;
  page: number;
  onChange: (page: number) => void;
  what: string;
}) {
  if (pages <= 1) return null;
  return (
    <Group justify="space-between">
      <Text size="sm" c="dimmed">
        {total} {what}
      </Text>
      <Pagination
        total={pages}
        value={page}
        onChange={onChange}
        size="sm"
        getControlProps={(control) => ({ "aria-label": `${control} page` })}
        getItemProps={(number) => ({ "aria-label": `page ${number}` })}
      />
    </Group>
  );
}

/** A table that scrolls in its own box at a phone's width, with its column heads (the last
 * one, `actions`, named for screen readers only). */
export function ListTable({
  label,
  miw,
  columns,
  actions = false,
  striped = true,
  children,
}: {
  label: string;
  miw: number;
  columns: string[];
  actions?: boolean;
  striped?: boolean;
  children: ReactNode;
}) {
  return (
    // Focusable, so a keyboard can scroll it at a phone's width.
    <div className="table-scroll" tabIndex={0} role="region" aria-label={label}>
      <Table striped={striped} verticalSpacing="xs" aria-label={label} miw={miw}>
        <Table.Thead>
          <Table.Tr>
            {columns.map((column) => (
              <Table.Th key={column}>{column}</Table.Th>
            ))}
            {actions && (
              <Table.Th>
                <VisuallyHidden>Actions</VisuallyHidden>
              </Table.Th>
            )}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>{children}</Table.Tbody>
      </Table>
    </div>
  );
}

/** A name above its id, in a table cell. */
export function NameCell({ name, id }: { name: string; id: string }) {
  return (
    <Table.Td>
      <Text size="sm" fw={500}>
        {name}
      </Text>
      <Text size="xs" c="dimmed" className="key-raw">
        {id}
      </Text>
    </Table.Td>
  );
}

/** `$1.2000 / $10.00`: spend, and the budget when there is one. */
export function SpendCell({ spend, budget }: { spend: number; budget: number | null | undefined }) {
  return (
    <Table.Td className="nowrap">
      <Text size="sm">
        {money(spend)}
        {budget != null ? ` / ${money(budget)}` : ""}
      </Text>
    </Table.Td>
  );
}

/** The Delete item of an actions menu: asks first, then runs `run`. */
export function deleteAction(
  confirm: (confirmation: Confirmation) => void,
  title: string,
  message: string,
  run: () => Promise<unknown>,
): Action {
  return {
    label: "Delete",
    color: "red",
    onClick: () => confirm({ title, message, action: "Delete", color: "red", run }),
  };
}
