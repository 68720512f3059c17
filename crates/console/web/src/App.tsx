import { AppShell, Burger, Button, Center, Group, Loader, NavLink, Text, Title } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { useQueryClient } from "@tanstack/react-query";
import { Redirect, Route, Router, Switch, useLocation } from "wouter";
import { useHashLocation } from "wouter/use-hash-location";
import { KeysPage } from "./pages/Keys";
import { ModelsPage } from "./pages/Models";
import { OrgsPage } from "./pages/Orgs";
import { SpendPage } from "./pages/Spend";
import { SignIn } from "./pages/SignIn";
import { TeamsPage } from "./pages/Teams";
import { UsersPage } from "./pages/Users";
import { VaultPage } from "./pages/Vault";
import { useSession } from "./session";

/** The pages, and whether internal users (who see only their own things) get them. */
const PAGES = [
  { path: "/keys", label: "Keys", component: KeysPage, internal: true },
  { path: "/teams", label: "Teams", component: TeamsPage, internal: true },
  { path: "/users", label: "Users", component: UsersPage, internal: false },
  { path: "/organizations", label: "Organizations", component: OrgsPage, internal: false },
  { path: "/spend", label: "Spend", component: SpendPage, internal: true },
  { path: "/models", label: "Models", component: ModelsPage, internal: false },
  { path: "/vault", label: "Vault", component: VaultPage, internal: false },
];

function usePages() {
  const { session } = useSession();
  return PAGES.filter((page) => page.internal || session?.role !== "internal_user");
}

function Navigation({ onNavigate }: { onNavigate: () => void }) {
  const [location, navigate] = useLocation();
  return (
    <nav aria-label="Pages">
      {usePages().map((page) => (
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
  const pages = usePages();
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
          {pages.map((page) => (
            <Route key={page.path} path={page.path} component={page.component} />
          ))}
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
