import { Alert, Button, Center, Paper, PasswordInput, Stack, Text, Title } from "@mantine/core";
import { useState, type FormEvent } from "react";
import { useSession } from "../session";

export function SignIn() {
  const { signIn, notice } = useSession();
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(key.trim());
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Center mih="100vh" p="md">
      <Paper component="main" withBorder shadow="sm" p="xl" w="100%" maw={420}>
        <form onSubmit={submit}>
          <Stack>
            <Title order={1} size="h3">
              vaultgate console
            </Title>
            <Text size="sm" c="dimmed">
              Sign in with the master key or your own key. The key is exchanged for a session
              of eight hours and is not kept by this page.
            </Text>
            {notice && (
              <Alert color="yellow" role="status">
                {notice}
              </Alert>
            )}
            <PasswordInput
              label="Key"
              placeholder="sk-..."
              autoComplete="current-password"
              required
              value={key}
              onChange={(event) => setKey(event.currentTarget.value)}
              error={error}
              data-autofocus
            />
            <Button type="submit" loading={busy} disabled={!key.trim()}>
              Sign in
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
