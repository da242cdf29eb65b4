// page.test.mjs - drives the web page of a running wb-mqtt-bridge in Debian's
// headless chromium (playwright-core, never a downloaded browser).
//
// Environment: WBMB_HTTP_BASE (http://127.0.0.1:PORT), WBMB_TOKEN (optional,
// typed into the page's token field), WBMB_CHANGE_CMD (a shell command that
// makes device "tv" report power = true, e.g. a mosquitto_pub),
// WBMB_PUB_CMD (a mosquitto_pub command line without -t/-m, for the graph's
// volume values), WBMB_BUILD_DIR (where page.png goes). Expects a device "tv" and a scenario
// "movie". Exits non-zero on the first failed expectation.
import { chromium } from "playwright-core";
import { execSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BASE = process.env.WBMB_HTTP_BASE;
const TOKEN = process.env.WBMB_TOKEN || "";
const CHANGE = process.env.WBMB_CHANGE_CMD;
const PUB = process.env.WBMB_PUB_CMD;
const OUT = process.env.WBMB_BUILD_DIR || ".";
if (!BASE || !CHANGE || !PUB) {
  console.error("WBMB_HTTP_BASE, WBMB_CHANGE_CMD and WBMB_PUB_CMD are required");
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
  const foreign = [], errors = [], history = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(BASE)) foreign.push(r.url());
    else if (r.url().includes("/state-history/tv?")) history.push(new URL(r.url()));
  });
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
  await until(page, () => document.querySelector("#scenario-active").textContent === "movie · active", 15000, "active scenario");
  ok("active scenario shown", true);
  const st = await (await fetch(BASE + "/scenario/state")).json();
  ok("GET /scenario/state says movie is active", st.scenario_id === "movie" && st.status === "active");
  await page.waitForSelector("#scen-movie.active", { timeout: 5000 });
  ok("scenario card marked active", true);

  // History of a device (expand): graphs over the last hour by default.
  await page.click("#dev-tv details summary");
  await page.waitForSelector("#dev-tv details table, #dev-tv details svg", { timeout: 10000 });
  ok("history shown", true);
  const vol = '#dev-tv svg.graph[data-field="volume"]';
  await page.waitForSelector(vol, { timeout: 10000 });
  ok("a graph for the numeric field volume", true);
  ok("a graph for the boolean field power", (await page.locator('#dev-tv svg.graph[data-field="power"]').count()) === 1);
  const req1 = history[history.length - 1];
  const near = (u, range) => u && Math.abs(Date.parse(u.searchParams.get("from")) - (Date.now() - range)) < 120e3;
  ok("1 h asked for with from=, order=asc, max_points=",
    near(req1, 3600e3) && req1.searchParams.get("order") === "asc" && +req1.searchParams.get("max_points") > 0 &&
    +req1.searchParams.get("max_points") <= 500);

  // A hover label shows a published value, or (where the server answered
  // max_points with a bucket of several rows) "mean (min–max)" with min and
  // max published values, the mean between them and, when given, want
  // inside the range: values published seconds apart share a bucket.
  const shows = (l, values, want) => {
    const one = /^(-?[\d.]+) · /.exec(l);
    if (one) return values.includes(+one[1]) && (want === undefined || +one[1] === want);
    const b = /^(-?[\d.]+) \((-?[\d.]+)–(-?[\d.]+)\) · /.exec(l);
    return !!b && values.includes(+b[2]) && values.includes(+b[3]) && +b[2] <= +b[1] && +b[1] <= +b[3] &&
      (want === undefined || (+b[2] <= want && want <= +b[3]));
  };

  // Live values land on the open graph: publish, each one shown before the next.
  const published = [10, 20, 15, 30, 25];   // test_browser.sh, the scenario's set_volume
  for (const v of [41, 47, 44]) {
    execSync(`${PUB} -t /devices/tv_ir/controls/volume -m ${v}`, { stdio: "inherit" });
    published.push(v);
    await page.evaluate((v) => { window.__want = String(v); }, v);
    await until(page, () => document.querySelector('#dev-tv [data-field="volume"]').textContent === window.__want,
      10000, "volume " + v);
  }
  await until(page, () => {
    const g = document.querySelector('#dev-tv svg.graph[data-field="volume"]');
    return !!g && g.querySelector(".vmax").textContent === "47";
  }, 10000, "graph's value axis up to 47");
  ok("graph's value axis shows the published maximum", true);
  const tickTexts = () => page.$$eval(vol + " text.tick", (ts) => ts.map((t) => t.textContent));
  let ticks = await tickTexts();
  ok("1 h time axis: HH:MM tick labels (" + ticks.join(" ") + ")",
    ticks.length >= 2 && ticks.every((t) => /^([01]\d|2[0-3]):[0-5]\d$/.test(t)));

  // The value and time under the pointer.
  await page.locator(vol).scrollIntoViewIfNeeded();
  const box = await page.locator(vol).boundingBox();
  const labels = [];
  for (const fx of [0.2, 0.5, 0.8, 0.97, 0.999]) {
    await page.mouse.move(box.x + box.width * fx, box.y + box.height / 2);
    labels.push(await page.$eval(vol + " text.hover", (t) => t.getAttribute("visibility") === "visible" ? t.textContent : ""));
  }
  const parsed = labels.map((l) => /^(-?[\d.]+)(?: \(.*\))? · ([01]\d|2[0-3]):[0-5]\d:[0-5]\d$/.exec(l));
  ok("hover labels read 'value · HH:MM:SS' (" + labels.join(" | ") + ")", parsed.every((m) => m));
  ok("hover labels show published values (or a bucket of them)", labels.every((l) => shows(l, published)));
  ok("hover at the right end shows the newest value", parsed[parsed.length - 1] && +parsed[parsed.length - 1][1] === 44);
  await page.mouse.move(0, 0);

  // Range picker: 24 h and 7 d ask for their range with max_points and redraw.
  // (24 h ticks fall on whole hours, which tells them from the 1 h ones.)
  for (const [range, ms, re] of [["24h", 86400e3, /^([01]\d|2[0-3]):00$/],
    ["7d", 7 * 86400e3, /^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) ([1-9]|[12]\d|3[01])$/]]) {
    const before = history.length;
    await page.click(`#dev-tv [data-range="${range}"]`);
    const end = Date.now() + 10000;
    while (history.length === before && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const u = history[history.length - 1];
    ok(range + " asked for from= about " + range + " ago with max_points= (" + (u && u.search) + ")",
      history.length > before && near(u, ms) && +u.searchParams.get("max_points") > 0 && u.searchParams.get("order") === "asc");
    await page.evaluate((src) => { window.__tick = new RegExp(src); }, re.source);
    await until(page, () => {
      const ts = [...document.querySelectorAll('#dev-tv svg.graph[data-field="volume"] text.tick')];
      return ts.length >= 2 && ts.every((t) => window.__tick.test(t.textContent));
    }, 10000, range + " tick labels");
    ticks = await tickTexts();
    ok(range + " time axis labels (" + ticks.join(" ") + ")", true);
  }
  ok("7 d graph still shows volume", (await page.locator(vol).count()) === 1);
  // Back to 1 h for the screenshot (the hover works on a redrawn graph too).
  await page.click('#dev-tv [data-range="1h"]');
  await until(page, () => {
    const ts = [...document.querySelectorAll('#dev-tv svg.graph[data-field="volume"] text.tick')];
    return ts.length >= 2 && ts.every((t) => /^\d\d:\d\d$/.test(t.textContent));
  }, 10000, "1 h tick labels again");
  await page.locator(vol).scrollIntoViewIfNeeded();
  const box2 = await page.locator(vol).boundingBox();
  await page.mouse.move(box2.x + box2.width * 0.995, box2.y + box2.height / 2);
  const rl = await page.$eval(vol + " text.hover", (t) => t.textContent);
  ok("hover on the redrawn 1 h graph (" + rl + ")", shows(rl, published, 44));
  await until(page, () => getComputedStyle(document.querySelector("#toast")).opacity === "0", 10000, "toast gone");

  // Aggregated rows (what max_points= answers once the server buckets):
  // served here for "plug" in a shuffled order, with one row older than the
  // range; the page must sort, drop that row and draw the min-max band.
  // The screenshot below shows this graph with the pointer on it.
  const now = Date.now();
  const buckets = [3, 0, 5, 1, 4, 2].map((i) => ({
    ts: new Date(now - (i * 10 + 5) * 60e3).toISOString(), kind: "interval", n: 10,
    state: { power_w: 40 + i, energy: 12 },
    stats: { power_w: { min: 38 + i, max: 45 + i, mean: 40 + i, n: 10 }, energy: { min: 12, max: 12, mean: 12, n: 10 } },
  }));
  buckets.push({ ts: new Date(now - 2 * 3600e3).toISOString(), state: { power_w: 999, energy: 1 } });
  await page.route((u) => u.pathname === "/state-history/plug", (r) =>
    r.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(buckets) }));
  await page.click("#dev-plug details summary");
  const pw = '#dev-plug svg.graph[data-field="power_w"]';
  await page.waitForSelector(pw, { timeout: 10000 });
  ok("bucket rows: the row before the range is left out",
    (await page.$eval(pw + " .vmax", (t) => t.textContent)) === "50" &&
    (await page.$eval(pw, (g) => g.getAttribute("aria-label"))) === "power_w, 6 points");
  ok("bucket rows: a min-max band", (await page.locator(pw + " polygon.band").count()) === 1);
  await page.locator(pw).scrollIntoViewIfNeeded();
  const pbox = await page.locator(pw).boundingBox();
  await page.mouse.move(pbox.x + pbox.width * 0.6, pbox.y + pbox.height / 2);
  const plab = await page.$eval(pw + " text.hover", (t) => t.textContent);
  const pm = /^(\d+) \((\d+)–(\d+)\) · \d\d:\d\d:\d\d$/.exec(plab);
  ok("bucket rows: hover shows mean (min–max) (" + plab + ")", pm && +pm[2] === +pm[1] - 2 && +pm[3] === +pm[1] + 5);

  // Back to the top: the sticky header would otherwise sit mid-page in a
  // full-page screenshot.
  await page.evaluate(() => window.scrollTo(0, 0));
  const box3 = await page.locator(vol).boundingBox();
  await page.mouse.move(box3.x + box3.width * 0.995, box3.y + box3.height / 2);
  await page.screenshot({ path: join(OUT, "page.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(OUT, "page-phone.png"), fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  ok("no horizontal scrolling on a phone", !overflow);
  // A touch on the phone-width graph (redrawn for the new width) shows the value.
  await until(page, () => {
    const g = document.querySelector('#dev-tv svg.graph[data-field="volume"]');
    return !!g && Math.abs(g.getBoundingClientRect().width - +g.getAttribute("width")) < 2;
  }, 10000, "graph redrawn at phone width");
  await page.locator(vol).scrollIntoViewIfNeeded();
  const tb = await page.locator(vol).boundingBox();
  await page.dispatchEvent(vol, "pointerdown", { pointerType: "touch", isPrimary: true, bubbles: true,
    clientX: tb.x + tb.width - 2, clientY: tb.y + tb.height / 2 });
  const tl = await page.$eval(vol + " text.hover", (t) => t.getAttribute("visibility") === "visible" ? t.textContent : "");
  ok("a touch on a phone shows the value under it (" + tl + ")", /· \d\d:\d\d:\d\d$/.test(tl) && shows(tl, published, 44));

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
