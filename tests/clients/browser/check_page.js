// Opens the demo's index.html from its file:// URL (as a user double-clicks it) in Debian's Chromium and prints,
// as JSON, what a reader sees: every image (loaded? shown at what size?), the before/after slider dragged with the
// mouse and moved with the arrow keys (how much of the "after" image is visible at each stop), every output with
// its caption, the log line parsed, text that overflows at laptop and phone widths, the smallest text, and every
// console error, page error and failed request. Writes into SHOTS: page.png (the first screen at 1280x800) and
// slider-<stop>.png (the slider at each stop). Usage: node check_page.js PAGE.html SHOTS_DIR
// (tests/clients/test_browser_demo_page.py runs it on the page `superres demo` wrote.)
'use strict';
const path = require('path');
const { pathToFileURL } = require('url');
const puppeteer = require('puppeteer-core');

const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844, isMobile: true, hasTouch: true };
const SLIDER_STOPS = [20, 80]; // where the mouse drags the slider to, in % of its width

function watchProblems(page) {
  const problems = [];
  page.on('console', (message) => {
    if (['error', 'warn'].includes(message.type())) problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('requestfailed',
    (request) => problems.push(`requestfailed: ${request.url()} ${request.failure().errorText}`));
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`response ${response.status()}: ${response.url()}`);
  });
  return problems;
}

// Lazy images load when they come near the screen: bring each into view, as a reader scrolling down would.
async function loadEveryImage(page) {
  const count = await page.$$eval('img', (images) => images.length);
  for (let index = 0; index < count; index += 1) {
    await page.evaluate((i) => document.images[i].scrollIntoView({ block: 'center' }), index);
    await page.waitForFunction((i) => document.images[i].complete, { timeout: 60000 }, index);
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  return page.$$eval('img', (images) => images.map((img) => {
    const rect = img.getBoundingClientRect();
    return { src: img.getAttribute('src'), alt: img.alt, loaded: img.complete && img.naturalWidth > 0,
      natural: [img.naturalWidth, img.naturalHeight], shown: [Math.round(rect.width), Math.round(rect.height)] };
  }));
}

// Which of the slider's two images the reader sees along a line across it (hit testing follows clip-path; the
// range input lies over both, so the first image under the point is the one on top).
function afterShare() {
  const slider = document.querySelector('.slider');
  const after = slider.querySelector('img.after');
  const rect = slider.getBoundingClientRect();
  const y = rect.top + rect.height * 0.3;
  const samples = 200;
  let seen = 0;
  for (let i = 0; i < samples; i += 1) {
    const x = rect.left + (i + 0.5) * rect.width / samples;
    if (document.elementsFromPoint(x, y).find((el) => el.tagName === 'IMG') === after) seen += 1;
  }
  return seen / samples;
}

// Drags the cut with the mouse from where it is to each stop, then moves it with the arrow keys, and reads where it
// went and what is visible.
async function dragSlider(page, shots) {
  const slider = await page.$('.slider');
  if (!slider) return { found: false };
  await slider.scrollIntoView();
  const input = await slider.$('input[type=range]');
  const value = async () => Number(await input.evaluate((el) => el.value));
  const box = await slider.boundingBox(); // in the window, as the mouse sees it
  const report = { found: true, shown: [Math.round(box.width), Math.round(box.height)],
    fits_window: box.y >= 0 && box.y + box.height <= LAPTOP.height,
    start: { value: await value(), after_share: await page.evaluate(afterShare) }, stops: [] };
  const y = box.y + box.height * 0.6;
  for (const stop of SLIDER_STOPS) {
    await page.mouse.move(box.x + box.width * (await value()) / 100, y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * stop / 100, y, { steps: 8 });
    await page.mouse.up();
    const file = path.join(shots, `slider-${stop}.png`);
    const scroll = await page.evaluate(() => [window.scrollX, window.scrollY]); // clip is in page coordinates
    await page.screenshot({ path: file, clip: { x: box.x + scroll[0], y: box.y + scroll[1], width: box.width,
      height: box.height } });
    report.stops.push({ target: stop, value: await value(), after_share: await page.evaluate(afterShare),
      screenshot: file });
  }
  // The keyboard moves it too (a reader without a mouse): ten presses of the left arrow.
  const before = await value();
  await input.focus();
  for (let press = 0; press < 10; press += 1) await page.keyboard.press('ArrowLeft');
  report.keyboard = { from: before, presses: 10, value: await value(), after_share: await page.evaluate(afterShare) };
  return report;
}

function readOutputs() {
  return [...document.querySelectorAll('.outputs figure')].map((figure) => {
    const img = figure.querySelector('img');
    const caption = figure.querySelector('figcaption');
    const rect = img ? img.getBoundingClientRect() : { width: 0, height: 0 };
    return { src: img && img.getAttribute('src'), loaded: Boolean(img && img.complete && img.naturalWidth > 0),
      natural: img ? [img.naturalWidth, img.naturalHeight] : null,
      shown: [Math.round(rect.width), Math.round(rect.height)],
      caption: caption ? caption.innerText : null,
      caption_overflows: caption ? caption.scrollWidth > caption.clientWidth : null };
  });
}

function readLogLines() {
  return [...document.querySelectorAll('pre')].map((pre) => {
    const rect = pre.getBoundingClientRect();
    const entry = { shown: [Math.round(rect.width), Math.round(rect.height)] };
    try {
      entry.parsed = JSON.parse(pre.textContent);
    } catch (err) {
      entry.error = err.message;
    }
    return entry;
  });
}

// Elements that stick out of the page sideways (outside a box that scrolls them on purpose, like <pre>), and the
// smallest font any visible text is set in.
function readLayout() {
  const width = document.documentElement.clientWidth;
  const scrolls = (el) => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(el).overflowX);
  const insideScroller = (el) => {
    for (let parent = el.parentElement; parent && parent !== document.body; parent = parent.parentElement) {
      if (scrolls(parent)) return true;
    }
    return false;
  };
  const overflowing = [...document.body.querySelectorAll('*')]
    .filter((el) => el.getBoundingClientRect().right > width + 1 && !insideScroller(el))
    .map((el) => `${el.tagName.toLowerCase()}: ${el.textContent.trim().slice(0, 60)}`);
  const sizes = [...document.body.querySelectorAll('*')]
    .filter((el) => [...el.childNodes].some((node) => node.nodeType === Node.TEXT_NODE && node.textContent.trim())
      && el.getClientRects().length > 0)
    .map((el) => parseFloat(getComputedStyle(el).fontSize));
  return { width, scroll_width: document.documentElement.scrollWidth, overflowing,
    smallest_font_px: sizes.length ? Math.min(...sizes) : null };
}

async function main() {
  const [pageFile, shots] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--hide-scrollbars'],
  });
  try {
    const page = await browser.newPage();
    const problems = watchProblems(page);
    await page.setViewport(LAPTOP);
    await page.goto(pathToFileURL(path.resolve(pageFile)).href, { waitUntil: 'load' });
    const report = { title: await page.title() };
    report.images = await loadEveryImage(page);
    const screenshot = path.join(shots, 'page.png');
    await page.screenshot({ path: screenshot });
    report.screenshot = screenshot;
    report.slider = await dragSlider(page, shots);
    report.outputs = await page.evaluate(readOutputs);
    report.log_lines = await page.evaluate(readLogLines);
    report.layout = { laptop: await page.evaluate(readLayout) };
    await page.setViewport(PHONE);
    report.layout.phone = await page.evaluate(readLayout);
    report.problems = problems;
    process.stdout.write(JSON.stringify(report));
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stderr.write(String((err && err.stack) || err));
  process.exit(1);
});
