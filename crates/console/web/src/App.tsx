import { AppShell, Burger, Button, Center, Group, Loader, NavLink, Text, Title } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { useQueryClient } from "@tanstack/react-query";
import { Redirect, Route, Router, Switch, useLocation } from "wouter";
import { useHashLocation } from "wouter/use-hash-location";
import { KeysPage } from "./pages/Keys";
import { ModelsPage } from "./pages/Models";
import { SpendPage } from "./pages/Spend";
import { SignIn } from "./pages/SignIn";
import { VaultPage } from "./pages/Vault";
import { useSession } from "./session";

const PAGES = [
  { path: "/keys", label: "Keys" },
  { path: "/spend", label: "Spend" },
  { path: "/models", label: "Models" },
  { path: "/vault", label: "Vault" },
];

function Navigation({ onNavigate }: { onNavigate: () => void }) {
  const [location, navigate] = useLocation();
  return (
    <nav aria-label="Pages">
      {PAGES.map((page) => (
        <NavLink
          key={page.path}
          href={`#${page.path}`}
          label={page.label}
          active={location.startsWith(page.path)}
          onClick={(event) => {
            event.preventDefault();
            navigate(page.path);
            onNavigate();
          }}
        />
      ))}
    </nav>
  );
}

function Shell() {
  const { session, signOut } = useSession();
  const [opened, { toggle, close }] = useDisclosure();
  const queries = useQueryClient();
  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 200, breakpoint: "sm", collapsed: { mobile: !opened } }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Menu" />
            <Title order={1} size="h4">
              vaultgate
            </Title>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <Text size="sm" c="dimmed" visibleFrom="xs">
              {session?.subject} · {session?.role.replace("_", " ")}
            </Text>
            <Button
              variant="default"
              size="xs"
              onClick={() => {
                queries.clear();
                void signOut();
              }}
            >
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs">
        <Navigation onNavigate={close} />
      </AppShell.Navbar>
      <AppShell.Main>
        <Switch>
          <Route path="/keys" component={KeysPage} />
          <Route path="/spend" component={SpendPage} />
          <Route path="/models" component={ModelsPage} />
          <Route path="/vault" component={VaultPage} />
          <Route>
            <Redirect to="/keys" />
          </Route>
        </Switch>
      </AppShell.Main>
    </AppShell>
  );
}

export function App() {
  const { session, loading } = useSession();
  if (loading) {
    return (
      <Center h="100vh">
        <Loader aria-label="Loading" />
      </Center>
    );
  }
  return <Router hook={useHashLocation}>{session ? <Shell /> : <SignIn />}</Router>;
}
