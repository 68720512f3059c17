import type { APIRequestContext, Page } from "@playwright/test";
import { request as apiRequest } from "@playwright/test";
import { expect, expectAccessible, screenshot, signIn, test } from "./fixtures";

const BAO = process.env.VAULTGATE_BAO_ADDR ?? "";
const BAO_TOKEN = process.env.VAULTGATE_BAO_TOKEN ?? "";

/** Vault itself, as an operator with the root token would change it behind the gateway's back. */
async function bao(): Promise<APIRequestContext> {
  return apiRequest.newContext({ baseURL: BAO, extraHTTPHeaders: { "X-Vault-Token": BAO_TOKEN } });
}

async function csrf(page: Page): Promise<string> {
  return (await (await page.request.get("/ui/api/session")).json()).csrf_token;
}

test("Vault: connection, token, every secret reference and where its value came from", async ({ page }) => {
  await signIn(page);
  await page.getByRole("link", { name: "Vault" }).click();
  await expect(page.getByRole("heading", { name: "Vault", exact: true })).toBeVisible();
  await expect(page.getByTestId("vault-status")).toHaveText("ok");
  await expect(page.getByText(BAO, { exact: true })).toBeVisible();
  await expect(page.getByText("token", { exact: true })).toBeVisible();
  await expect(page.getByText("never expires")).toBeVisible();
  await expect(page.getByText("root", { exact: true })).toBeVisible();
  const fromVault = page.getByTestId("reference-CONSOLE_PROVIDER_KEY");
  await expect(fromVault).toContainText("Vault");
  await expect(fromVault).toContainText(`${BAO}/v1/secret/data/CONSOLE_PROVIDER_KEY`);
  await expect(fromVault).toContainText(/\d+ s ago/);
  await expect(fromVault).toContainText("model_list[0].litellm_params.api_key");
  // Not in Vault: served from the environment.
  await expect(page.getByTestId("reference-CONSOLE_ORG")).toContainText("environment");
  await expect(page.getByTestId("drift-status")).toHaveText("in step");
  // gpt-leased's credentials: a renewable one-hour lease from the RabbitMQ engine, its TTL
  // counting down, the lease id nowhere on the page.
  const lease = page.getByTestId(`lease-${BAO}/v1/rabbitmq/creds/gateway`);
  await expect(lease).toContainText("renewable");
  await expect(lease).toContainText("valid");
  await expect(lease).toContainText("password");
  await expect(lease).toContainText("gpt-leased");
  await expect(lease.getByTestId("ttl-left")).toHaveText(/^(59|60) min$/);
  const status = await (await page.request.get("/admin/vault")).json();
  const leased = status.paths.find((p: { path: string }) => p.path.endsWith("rabbitmq/creds/gateway"));
  expect(leased).toMatchObject({ leased: true, renewable: true, expired: false });
  expect(leased.ttl_secs).toBeGreaterThan(3000);
  expect(leased.ttl_secs).toBeLessThanOrEqual(3600);
  expect(JSON.stringify(status)).not.toContain("rabbitmq/creds/gateway/");
  await expectAccessible(page);
  await screenshot(page, "vault");
});

test("Vault: drift between keys and copies is shown and repaired", async ({ page }) => {
  await signIn(page);
  const token = await csrf(page);
  const vault = await bao();
  const key = async (alias: string) => {
    const created = await page.request.post("/key/generate", { headers: { "X-CSRF-Token": token }, data: { key_alias: alias } });
    expect(created.status()).toBe(200);
    return (await created.json()).key as string;
  };
  // Behind the gateway's back: one key's copy overwritten (its value is still in the history),
  // one key's copy destroyed with all its versions, and a copy no key owns.
  const overwrittenKey = await key("drift-overwritten");
  await key("drift-destroyed");
  const overwritten = await vault.post("/v1/secret/data/litellm/drift-overwritten", {
    data: { data: { key: "sk-someone-else-00000000000000000" } },
  });
  expect(overwritten.status()).toBe(200);
  expect((await vault.delete("/v1/secret/metadata/litellm/drift-destroyed")).status()).toBe(204);
  const stray = await vault.post("/v1/secret/data/litellm/stray-copy", {
    data: { data: { key: "sk-stray-0000000000000000000000" } },
  });
  expect(stray.status()).toBe(200);

  await page.goto("/ui/#/vault");
  await expect(page.getByTestId("drift-status")).toHaveText("drift");
  await expect(page.getByTestId("uncopied-drift-overwritten")).toContainText("holds another value");
  await expect(page.getByTestId("uncopied-drift-destroyed")).toContainText("missing");
  await expect(page.getByTestId("copy-stray-copy")).toContainText("present");
  await expectAccessible(page);
  await screenshot(page, "vault-drift");

  await page.getByRole("button", { name: "Repair" }).click();
  const done = page.getByRole("status").filter({ hasText: "Repair done" });
  await expect(done).toContainText("drift-overwritten");
  await expect(done).toContainText("stray-copy");
  await expect(done).toContainText("Still out of step: drift-destroyed");
  await expect(page.getByTestId("uncopied-drift-overwritten")).toHaveCount(0);
  await expect(page.getByRole("table", { name: "Soft-deleted copies of deleted keys" })).toContainText("stray-copy");
  const restored = await vault.get("/v1/secret/data/litellm/drift-overwritten");
  expect((await restored.json()).data.data.key).toBe(overwrittenKey);

  // The key whose value is gone: regenerating it writes a new copy.
  await page.goto("/ui/#/keys");
  await page.getByRole("button", { name: "Actions for drift-destroyed" }).click();
  await page.getByRole("menuitem", { name: "Regenerate" }).click();
  await page.getByRole("dialog", { name: "Regenerate key" }).getByRole("button", { name: "Regenerate" }).click();
  await page.getByRole("dialog", { name: "Your new key" }).getByRole("button", { name: "Done" }).click();
  await page.goto("/ui/#/vault");
  await expect(page.getByTestId("drift-status")).toHaveText("in step");
});
