import { chat, expect, expectAccessible, screenshot, signIn, test } from "./fixtures";

test("a key's use shows in the daily spend and token charts and among the top spenders", async ({ page }) => {
  await signIn(page);
  await page.getByRole("link", { name: "Spend" }).click();
  await expect(page.getByText("No spend recorded yet.")).toBeVisible();

  const { csrf_token } = await (await page.request.get("/ui/api/session")).json();
  const generate = async (alias: string, team: string) => {
    const response = await page.request.post("/key/generate", {
      headers: { "X-CSRF-Token": csrf_token },
      data: { key_alias: alias, team_id: team },
    });
    expect(response.status()).toBe(200);
    return (await response.json()).key as string;
  };
  const big = await generate("spender-big", "team-x");
  const small = await generate("spender-small", "team-x");
  for (let i = 0; i < 3; i++) expect((await chat(page, big, "gpt-a")).status()).toBe(200);
  expect((await chat(page, small, "gpt-a")).status()).toBe(200);

  // Spend reaches the store at the writer's next tick (1 s).
  const today = new Date().toISOString().slice(0, 10);
  await expect(async () => {
    await page.reload();
    await expect(page.getByTestId(`day-spender-big-${today}`).locator("td").last()).toHaveText("3", { timeout: 5000 });
    await expect(page.getByTestId(`day-spender-small-${today}`).locator("td").last()).toHaveText("1", { timeout: 5000 });
  }).toPass({ timeout: 45_000 });
  // One series per key, named in the legend, drawn as an SVG chart.
  const chart = page.getByTestId("spend-chart");
  await expect(chart.locator("svg.recharts-surface").first()).toBeVisible();
  await expect(chart).toContainText("spender-big");
  await expect(chart).toContainText("spender-small");
  await expect(page.getByTestId("tokens-chart").locator(".recharts-bar-rectangle").first()).toBeVisible();
  const top = page.getByRole("table", { name: "Top spenders" }).locator("tbody tr");
  await expect(top.first()).toContainText("spender-big");
  await expect(top.nth(1)).toContainText("spender-small");
  await expectAccessible(page);
  await screenshot(page, "spend");

  // By team: both keys add up under team-x.
  await page.getByText("By team").click();
  await expect(page.getByTestId(`day-team-x-${today}`).locator("td").last()).toHaveText("4");
  await expect(chart).toContainText("team-x");
  await expect(chart).not.toContainText("spender-small");

  // Spend by model, and the request log with its filters (a failed request among them).
  expect((await chat(page, big, "gpt-down")).status()).toBe(502);
  await expect(async () => {
    await page.reload();
    await expect(page.getByTestId("request-row")).toHaveCount(5, { timeout: 5000 });
  }).toPass({ timeout: 45_000 });
  await expect(page.getByTestId("model-chart").locator(".recharts-bar-rectangle").first()).toBeVisible();
  await expect(page.getByTestId("model-spend-gpt-a-upstream")).toContainText("$");
  const log = page.getByRole("table", { name: "Recent requests" });
  await expect(log.getByTestId("request-row").first()).toContainText("502");
  await expect(log.getByTestId("request-row").first()).toContainText("gpt-down");
  await page.getByRole("combobox", { name: "Status" }).click();
  await page.getByRole("option", { name: "failed" }).click();
  await expect(log.getByTestId("request-row")).toHaveCount(1);
  await page.getByRole("combobox", { name: "Status" }).click();
  await page.getByRole("option", { name: "succeeded" }).click();
  await expect(log.getByTestId("request-row")).toHaveCount(4);
  await page.getByLabel("Key", { exact: true }).fill(small);
  await expect(log.getByTestId("request-row")).toHaveCount(1);
  await expect(log.getByTestId("request-row")).toContainText("spender-small");
  await page.getByLabel("Team id").fill("no-such-team");
  await expect(page.getByText("No request matches.")).toBeVisible();
  await expectAccessible(page);
  await screenshot(page, "spend-log");
});
