// Opens an index.html in Debian's headless Chromium (playwright-core), as a user would:
// file:// URL, no security-relaxing flag. Waits until the first <model-viewer> fired `load`
// (model-viewer loads a head when it scrolls into view; with software WebGL each takes a
// minute or more), clicks its animation buttons, screenshots the page and that viewer.
// Prints a JSON summary. Usage: node tools/web/page_check.js PAGE.html SCREENSHOT.png [timeout_ms]
const path = require("path");
const {chromium} = require("playwright-core");

(async () => {
  const [page_path, shot, timeout_ms] = process.argv.slice(2);
  const timeout = Number(timeout_ms || 180000);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // The machine probe's flags (root needs --no-sandbox; the rest stop background traffic).
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const result = {viewers: 0, loaded: 0, errors: [], clicked: 0};
  try {
    const page = await browser.newPage({viewport: {width: 1400, height: 900}});
    page.on("pageerror", (e) => result.errors.push(String(e)));
    await page.goto("file://" + path.resolve(page_path), {timeout});
    result.viewers = await page.locator("model-viewer").count();
    if (result.viewers > 0) {
      await page.locator("model-viewer").first().scrollIntoViewIfNeeded();
      await page.waitForFunction(
          () => document.querySelector("model-viewer[data-loaded]") !== null ||
                document.querySelector("model-viewer[data-error]") !== null,
          null, {timeout, polling: 1000});
    }
    result.loaded = await page.locator("model-viewer[data-loaded]").count();
    const buttons = page.locator("button[data-clip]");
    for (let i = 0; i < Math.min(await buttons.count(), 3); i++) {
      await buttons.nth(i).click();
      result.clicked += 1;
    }
    await page.waitForTimeout(700);
    const first = page.locator("model-viewer").first();
    if (result.viewers > 0) await first.scrollIntoViewIfNeeded();
    await page.screenshot({path: shot, fullPage: false});
    if (result.viewers > 0) await first.screenshot({path: shot.replace(/\.png$/, "_viewer.png")});
  } catch (e) {
    result.errors.push(String(e));
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(result));
})();
