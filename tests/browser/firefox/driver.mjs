// Drives Debian's Firefox ESR for the browser tests, over WebDriver BiDi with puppeteer-core.
//
// Started by tests/browser/firefox/driver.py as a subprocess. Reads one JSON command a line
// on stdin: {"id": 1, "op": "goto", "page": "p1", "url": "https://..."}; writes one JSON
// reply a line on stdout: {"id": 1, "ok": true, "value": ...} or {"id": 1, "ok": false,
// "error": "..."}. Page errors are collected per page and answered by "problems".
//
// Firefox launches headless with fake media devices granted without asking and accepts the
// test server's self-signed certificate. Each "open" makes a fresh browser context (its own
// cookies), so several people can sign in from the same Firefox.

import { createRequire } from "node:module";
import { createInterface } from "node:readline";

// puppeteer-core is a development dependency of web/ (web/package.json)
const fromWeb = createRequire(new URL("../../../web/package.json", import.meta.url));
const { default: puppeteer } = await import(fromWeb.resolve("puppeteer-core"));

const FIREFOX = process.env.CAUCUS_FIREFOX || "/usr/bin/firefox-esr";

const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: FIREFOX,
  headless: true,
  acceptInsecureCerts: true,
  extraPrefsFirefox: {
    "media.navigator.streams.fake": true,
    "media.navigator.permission.disabled": true,
    "media.autoplay.default": 0,
    "media.autoplay.block-webaudio": false,
    "media.getdisplaymedia.enabled": true,
    // every page counts as focused: Firefox holds enumerateDevices() and getUserMedia()
    // back for a page without focus, and each test page is one of several
    "focusmanager.testmode": true,
    "media.devices.unfocused.enabled": true,
    "media.getusermedia.window.focus_source.enabled": false,
  },
});

const pages = new Map(); // page id -> {context, page, problems}
let nextPage = 1;

function pageOf(command) {
  const entry = pages.get(command.page);
  if (!entry) throw new Error(`no page ${command.page}`);
  return entry;
}

// "text" narrows a selector to the elements whose text contains it
async function waitFor(page, selector, text, timeout, state) {
  if (text === undefined || text === null) {
    const options = { timeout };
    if (state === "visible") options.visible = true;
    if (state === "hidden") options.hidden = true;
    await page.waitForSelector(selector, options);
    return;
  }
  await page.waitForFunction(
    (sel, wanted) =>
      [...document.querySelectorAll(sel)].some((node) => (node.textContent || "").includes(wanted)),
    { timeout, polling: 100 },
    selector,
    text,
  );
}

const OPERATIONS = {
  async open(command) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    const id = `p${nextPage++}`;
    const problems = [];
    page.on("pageerror", (error) => problems.push(`${page.url()}: ${error.message || error}`));
    page.on("console", (message) => {
      if (message.type() === "error" && message.text().includes("Content Security Policy")) {
        problems.push(`${page.url()}: ${message.text()}`);
      }
    });
    if (command.width && command.height) {
      await page.setViewport({ width: command.width, height: command.height });
    }
    if (command.init_script) await page.evaluateOnNewDocument(command.init_script);
    pages.set(id, { context, page, problems });
    return id;
  },
  async goto(command) {
    const response = await pageOf(command).page.goto(command.url, { waitUntil: "load" });
    return response ? response.status() : null;
  },
  async url(command) {
    // the document's own address: puppeteer's page.url() can lag a navigation just made
    return pageOf(command).page.evaluate(() => location.href);
  },
  async fill(command) {
    const { page } = pageOf(command);
    await page.waitForSelector(command.selector, { visible: true, timeout: command.timeout });
    await page.$eval(command.selector, (node) => {
      node.value = "";
    });
    await page.type(command.selector, command.value);
    return null;
  },
  async click(command) {
    const { page } = pageOf(command);
    // as a person would: on a page whose scripts have run (web/static/js/form-guard.js
    // holds forms back until then), which Playwright's actionability checks wait for
    await page.waitForFunction(
      () => document.readyState !== "loading" && !document.documentElement.hasAttribute("data-loading"),
      { timeout: command.timeout, polling: 50 },
    );
    const handle = await page.waitForSelector(command.selector, {
      visible: true,
      timeout: command.timeout,
    });
    await handle.click();
    return null;
  },
  async wait(command) {
    const { page } = pageOf(command);
    await waitFor(page, command.selector, command.text, command.timeout, command.state);
    return null;
  },
  async wait_url(command) {
    const { page } = pageOf(command);
    await page.waitForFunction(
      (part) => location.pathname.includes(part),
      { timeout: command.timeout, polling: 100 },
      command.part,
    );
    return page.evaluate(() => location.href);
  },
  // "function" is the source of a function (async or not) called with "args"
  async evaluate(command) {
    const { page } = pageOf(command);
    return await page.evaluate(
      (source, args) => (0, eval)(`(${source})`)(...args),
      command.function,
      command.args || [],
    );
  },
  // polled from here (one evaluate per 200 ms): a page that navigates meanwhile is
  // looked at again in its new document
  async wait_function(command) {
    const { page } = pageOf(command);
    const deadline = Date.now() + (command.timeout || 15000);
    let last = null;
    for (;;) {
      try {
        const value = await page.evaluate(
          (source, args) => (0, eval)(`(${source})`)(...args),
          command.function,
          command.args || [],
        );
        if (value) return value;
        last = null;
      } catch (error) {
        last = error;
      }
      if (Date.now() > deadline) {
        throw new Error(`waiting for a function failed${last ? `: ${last.message}` : ""}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  },
  async upload(command) {
    const { page } = pageOf(command);
    const input = await page.waitForSelector(command.selector, { timeout: command.timeout });
    await input.uploadFile(...command.paths);
    return null;
  },
  async screenshot(command) {
    await pageOf(command).page.screenshot({ path: command.path });
    return command.path;
  },
  async problems(command) {
    return pageOf(command).problems;
  },
  async close(command) {
    const { context } = pageOf(command);
    pages.delete(command.page);
    await context.close();
    return null;
  },
  async version() {
    return await browser.version();
  },
};

function reply(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

const lines = createInterface({ input: process.stdin });
const pending = new Set();
lines.on("line", (line) => {
  if (!line.trim()) return;
  let command;
  try {
    command = JSON.parse(line);
  } catch (error) {
    reply({ id: null, ok: false, error: `not JSON: ${error.message}` });
    return;
  }
  const operation = OPERATIONS[command.op];
  const run = operation
    ? operation(command)
    : Promise.reject(new Error(`unknown operation ${command.op}`));
  const done = run.then(
    (value) => reply({ id: command.id, ok: true, value: value === undefined ? null : value }),
    (error) => reply({ id: command.id, ok: false, error: String(error && error.message || error) }),
  );
  pending.add(done);
  done.finally(() => pending.delete(done));
});
lines.on("close", async () => {
  await Promise.allSettled([...pending]);
  await browser.close();
  process.exit(0);
});
reply({ id: 0, ok: true, value: await browser.version() });
