// page.test.mjs - drives the web page of a running wb-mqtt-bridge in Debian's
// headless chromium (playwright-core, never a downloaded browser).
//
// Environment: WBMB_HTTP_BASE (http://127.0.0.1:PORT), WBMB_TOKEN (optional,
// typed into the page's token field), WBMB_CHANGE_CMD (a shell command that
// makes device "tv" report power = true, e.g. a mosquitto_pub),
// WBMB_BUILD_DIR (where page.png goes). Expects a device "tv" and a scenario
// "movie". Exits non-zero on the first failed expectation.
import { chromium } from "playwright-core";
import { execSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BASE = process.env.WBMB_HTTP_BASE;
const TOKEN = process.env.WBMB_TOKEN || "";
const CHANGE = process.env.WBMB_CHANGE_CMD;
const OUT = process.env.WBMB_BUILD_DIR || ".";
if (!BASE || !CHANGE) {
  console.error("WBMB_HTTP_BASE and WBMB_CHANGE_CMD are required");
  process.exit(2);
}

let failures = 0;
// Polls fn in the page until it returns true (page.waitForFunction would
// need 'unsafe-eval', which the page's Content-Security-Policy forbids).
async function until(page, fn, timeout, what) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn)) return;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}
function ok(what, cond) {
  console.log((cond ? "ok - " : "not ok - ") + what);
  if (!cond) failures++;
}

const profile = mkdtempSync(join(tmpdir(), "wbmb-chromium-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1100, height: 800 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  const foreign = [], errors = [];
  page.on("request", (r) => { if (!r.url().startsWith(BASE)) foreign.push(r.url()); });
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));

  await page.goto(BASE + "/", { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#dev-tv", { timeout: 10000 });
  ok("device card for tv", true);
  await until(page, () => document.querySelector("#livetxt").textContent === "live", 10000, "live events");
  ok("live events connected", true);
  await page.waitForSelector("#dev-tv [data-action]", { timeout: 10000 });
  ok("action buttons from GET /devices/tv", (await page.locator("#dev-tv [data-action]").count()) >= 1);

  if (TOKEN) {
    await page.fill("#token", TOKEN);
    await page.dispatchEvent("#token", "change");
  }

  // A state change made outside the page appears without a reload.
  await page.evaluate(() => { window.__noReload = 1; });
  execSync(CHANGE, { stdio: "inherit" });
  await until(page, () => {
    const c = document.querySelector('#dev-tv [data-field="power"]');
    return !!c && c.textContent === "on";
  }, 10000, "power on");
  ok("state change shown live", true);
  ok("page was not reloaded", await page.evaluate(() => window.__noReload === 1));

  // Switch to the scenario with its button.
  await page.click("#sw-movie");
  await until(page, () => /movie/.test(document.querySelector("#scenario-active").textContent), 15000, "active scenario");
  ok("active scenario shown", true);
  const st = await (await fetch(BASE + "/scenario/state")).json();
  ok("GET /scenario/state says movie is active", st.scenario_id === "movie" && st.status === "active");
  await page.waitForSelector("#scen-movie.active", { timeout: 5000 });
  ok("scenario card marked active", true);

  // History of a device (expand).
  await page.click("#dev-tv details summary");
  await page.waitForSelector("#dev-tv details table, #dev-tv details svg", { timeout: 10000 });
  ok("history shown", true);

  await page.screenshot({ path: join(OUT, "page.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(OUT, "page-phone.png"), fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  ok("no horizontal scrolling on a phone", !overflow);

  ok("nothing loaded from elsewhere", foreign.length === 0);
  if (foreign.length) console.log("# foreign: " + foreign.join(" "));
  ok("no script errors", errors.length === 0);
  if (errors.length) console.log("# errors: " + errors.join(" | "));
} catch (e) {
  console.log("not ok - " + (e && e.message ? e.message.split("\n")[0] : e));
  failures++;
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(failures ? `${failures} failed` : "all passed");
process.exit(failures ? 1 : 0);
