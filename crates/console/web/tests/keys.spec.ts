import { expect, expectAccessible, expectConsoleErrors, chat, screenshot, signIn, test } from "./fixtures";
import type { Page } from "@playwright/test";

async function rawKeyShown(page: Page): Promise<string> {
  const dialog = page.getByRole("dialog", { name: "Your new key" });
  await expect(dialog).toBeVisible();
  const key = (await dialog.getByTestId("raw-key").textContent())?.trim() ?? "";
  expect(key).toMatch(/^sk-/);
  await dialog.getByRole("button", { name: "Copy" }).click();
  await expect(dialog.getByRole("button", { name: "Copied" })).toBeVisible();
  await dialog.getByRole("button", { name: "Done" }).click();
  await expect(dialog).toHaveCount(0);
  return key;
}

function row(page: Page, alias: string) {
  return page.getByTestId(`key-${alias}`);
}

test("a key's whole life: create, Vault copy, use, spend, block, regenerate, delete", async ({ page, context, consoleErrors }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await signIn(page);
  await expect(page.getByRole("heading", { name: "Keys" })).toBeVisible();
  await expect(page.getByText("No keys yet.")).toBeVisible();
  await expectAccessible(page);

  // Create, with models, a budget, limits, an expiry and a team.
  await page.getByRole("button", { name: "Create key" }).click();
  const form = page.getByRole("dialog", { name: "Create a key" });
  await form.getByLabel("Alias").fill("browser-e2e");
  await form.getByRole("combobox", { name: "Models" }).click();
  await page.getByRole("option", { name: "gpt-a" }).click();
  await form.getByRole("combobox", { name: "Models" }).press("Escape");
  await form.getByLabel("Budget (USD)").fill("5");
  await form.getByLabel("Requests per minute").fill("600");
  await form.getByLabel("Team").fill("team-browser");
  await form.getByRole("combobox", { name: "Expires after" }).click();
  await page.getByRole("option", { name: "30 days" }).click();
  await expectAccessible(page);
  await form.getByRole("button", { name: "Create key" }).click();
  const key = await rawKeyShown(page);
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(key);

  // The list shows it, with its Vault copy present.
  const created = row(page, "browser-e2e");
  await expect(created).toContainText("team-browser");
  await expect(created).toContainText("gpt-a");
  await expect(created).toContainText("600 rpm");
  await expect(created.getByTestId("copy-status")).toHaveText("present");
  await expect(created).toContainText("litellm/browser-e2e");
  await screenshot(page, "keys");

  // Use it through the API: the spend appears.
  const answer = await chat(page, key, "gpt-a");
  expect(answer.status()).toBe(200);
  await page.reload();
  await expect(row(page, "browser-e2e").getByTestId("spend")).not.toHaveText(/^\$0\.0000/);
  // A model outside its list is refused.
  expect((await chat(page, key, "gpt-b")).status()).toBe(401);

  // Search by alias, and by the raw key.
  await page.getByLabel("Search").fill("no-such-alias");
  await expect(page.getByText("No key matches.")).toBeVisible();
  await page.getByLabel("Search").fill(key);
  await expect(row(page, "browser-e2e")).toBeVisible();
  await page.getByLabel("Search").fill("");

  // Edit.
  await page.getByRole("button", { name: "Actions for browser-e2e" }).click();
  await page.getByRole("menuitem", { name: "Edit" }).click();
  const edit = page.getByRole("dialog", { name: "Edit browser-e2e" });
  await edit.getByLabel("Tokens per minute").fill("90000");
  await edit.getByRole("button", { name: "Save" }).click();
  await expect(row(page, "browser-e2e")).toContainText("90000 tpm");

  // Block: the API refuses the key at once; unblock again.
  await page.getByRole("button", { name: "Actions for browser-e2e" }).click();
  await page.getByRole("menuitem", { name: "Block" }).click();
  await expect(row(page, "browser-e2e")).toContainText("Blocked");
  expect((await chat(page, key, "gpt-a")).status()).toBe(401);
  await page.getByRole("button", { name: "Actions for browser-e2e" }).click();
  await page.getByRole("menuitem", { name: "Unblock" }).click();
  await expect(row(page, "browser-e2e")).toContainText("Active");
  expect((await chat(page, key, "gpt-a")).status()).toBe(200);

  // Regenerate: a new value shown once, the old one refused, the new one works.
  await page.getByRole("button", { name: "Actions for browser-e2e" }).click();
  await page.getByRole("menuitem", { name: "Regenerate" }).click();
  await page.getByRole("dialog", { name: "Regenerate key" }).getByRole("button", { name: "Regenerate" }).click();
  const fresh = await rawKeyShown(page);
  expect(fresh).not.toBe(key);
  expect((await chat(page, key, "gpt-a")).status()).toBe(401);
  expect((await chat(page, fresh, "gpt-a")).status()).toBe(200);
  await expect(row(page, "browser-e2e").getByTestId("copy-status")).toHaveText("present");

  // Delete, confirmed: the key is gone and its Vault copy soft-deleted.
  await page.getByRole("button", { name: "Actions for browser-e2e" }).click();
  await page.getByRole("menuitem", { name: "Delete" }).click();
  const confirm = page.getByRole("dialog", { name: "Delete key" });
  await expect(confirm).toContainText("cannot be undone");
  await confirm.getByRole("button", { name: "Delete" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Deleted browser-e2e" })).toBeVisible();
  await expect(page.getByRole("status").getByTestId("copy-status")).toHaveText("soft-deleted");
  await expect(row(page, "browser-e2e")).toHaveCount(0);
  expect((await chat(page, fresh, "gpt-a")).status()).toBe(401);
  expect(expectConsoleErrors(consoleErrors, /401/)).toHaveLength(0);
});

test("an invalid form is refused in place with the API's message", async ({ page, consoleErrors }) => {
  await signIn(page);
  await page.getByRole("button", { name: "Create key" }).click();
  const form = page.getByRole("dialog", { name: "Create a key" });
  await form.getByLabel("Alias").fill("bad/../alias");
  await form.getByRole("button", { name: "Create key" }).click();
  await expect(form.getByRole("alert")).toContainText("key_alias");
  expectConsoleErrors(consoleErrors, /400/);
});

test("paging through many keys, filtered by team", async ({ page }) => {
  await signIn(page);
  const { csrf_token } = await (await page.request.get("/ui/api/session")).json();
  for (let i = 0; i < 17; i++) {
    const response = await page.request.post("/key/generate", {
      headers: { "X-CSRF-Token": csrf_token },
      data: { key_alias: `page-${String(i).padStart(2, "0")}`, team_id: i < 12 ? "paging" : "other" },
    });
    expect(response.status()).toBe(200);
  }
  await page.reload();
  await page.getByLabel("Team").fill("paging");
  // The filtered table first: it changes the page's height, which moves an open dropdown's
  // options under the table's cells (a click on one was intercepted once in CI).
  await expect(page.getByText("12 keys")).toBeVisible();
  await page.getByRole("combobox", { name: "Keys per page" }).click();
  await page.getByRole("option", { name: "10", exact: true }).click();
  await expect(page.getByText("12 keys")).toBeVisible();
  await expect(page.getByRole("table", { name: "Keys" }).locator("tbody tr")).toHaveCount(10);
  await page.getByRole("button", { name: "page 2" }).click();
  await expect(page.getByRole("table", { name: "Keys" }).locator("tbody tr")).toHaveCount(2);
  await expect(page.getByTestId("key-page-11")).toBeVisible();
  await page.getByLabel("Team").fill("other");
  await expect(page.getByText("5 keys")).toBeVisible();
  // At a phone's width the page still works.
  await page.setViewportSize({ width: 390, height: 844 });
  await expect(page.getByRole("button", { name: "Menu" })).toBeVisible();
  await screenshot(page, "keys-phone");
  await expectAccessible(page);
});
