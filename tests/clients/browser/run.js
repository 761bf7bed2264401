// Opens the upload page in Debian's Chromium (puppeteer-core, web security on) and prints what the page reports.
// The browser reaches COS hosts (*.myqcloud.com) through `superres local` as its HTTP proxy; loopback pages go
// direct (Chromium never proxies loopback unless told to).
'use strict';
const puppeteer = require('puppeteer-core');

async function main() {
  const [url, proxy] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', `--proxy-server=${proxy}`, '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    const logs = [];
    page.on('console', (message) => logs.push(`${message.type()}: ${message.text()}`));
    page.on('pageerror', (err) => logs.push(`pageerror: ${err.message}`));
    page.on('requestfailed', (request) => logs.push(`requestfailed: ${request.method()} ${request.url()} ${request.failure().errorText}`));
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction('window.__done === true', { timeout: 300000, polling: 200 });
    const results = await page.evaluate(() => window.__results);
    process.stdout.write(JSON.stringify({ results, logs }));
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err));
  process.exit(1);
});
