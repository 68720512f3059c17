import "@mantine/core/styles.css";
import "@mantine/charts/styles.css";
import "./console.css";

import { Alert, Badge, MantineProvider, Modal, NavLink, createTheme } from "@mantine/core";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { setNonce } from "get-nonce";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { SessionProvider } from "./session";

// The page's Content-Security-Policy admits <style> elements only with this response's nonce;
// the component library (and its scroll lock) insert a few, so they are given it.
const nonce = document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content ?? "";
setNonce(nonce);

const theme = createTheme({
  primaryColor: "indigo",
  // The darker shades keep white text on buttons above WCAG AA contrast.
  primaryShade: { light: 9, dark: 7 },
  // Text on coloured backgrounds is black or white, whichever keeps WCAG AA contrast.
  autoContrast: true,
  components: {
    // Icon-only close buttons need a name for screen readers.
    Modal: Modal.extend({ defaultProps: { closeButtonProps: { "aria-label": "Close" } } }),
    Badge: Badge.extend({ defaultProps: { variant: "filled" } }),
    NavLink: NavLink.extend({ defaultProps: { variant: "filled" } }),
    Alert: Alert.extend({ defaultProps: { closeButtonLabel: "Close" } }),
  },
  defaultRadius: "sm",
});

const queries = new QueryClient({
  defaultOptions: {
    // Every page shows what the gateway says now: data is refetched whenever a page is opened.
    queries: { retry: false, refetchOnWindowFocus: false, staleTime: 0 },
  },
});

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <MantineProvider theme={theme} getStyleNonce={() => nonce} defaultColorScheme="light">
        <QueryClientProvider client={queries}>
          <SessionProvider>
            <App />
          </SessionProvider>
        </QueryClientProvider>
      </MantineProvider>
    </StrictMode>,
  );
}
