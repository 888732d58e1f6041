// The booking flow of benches/browser.sh in Playwright, for comparison:
// one browser (the same Debian chromium clerk uses), a fresh context per
// booking, the same actions in the same order. Prints JSON: the time of
// each action and of each booking, in milliseconds.
//
//   node browser_playwright.mjs ERP_URL USER PASSWORD BOOKINGS PREFIX
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '.node', 'package.json'));
const { chromium } = require('playwright-core');

const [erp, user, password, count, prefix] = process.argv.slice(2);
const vendors = ['ACME Office Supplies GmbH', 'Blue Harbor Trading Ltd', 'Nordwind Logistik B.V.'];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
const actions = [];
const bookings = [];
for (let i = 1; i <= Number(count); i++) {
  const invoice = `${prefix}-${String(i).padStart(5, '0')}`;
  const times = [];
  const timed = async (name, work) => {
    const start = performance.now();
    const value = await work();
    times.push([name, performance.now() - start]);
    return value;
  };
  const start = performance.now();
  const context = await browser.newContext();
  const page = await context.newPage();
  await timed('goto login', () => page.goto(`${erp}/login`));
  await timed('fill #user', () => page.fill('#user', user));
  await timed('fill #password', () => page.fill('#password', password));
  await timed('click #login', () => page.click('#login'));
  await timed('wait for #main', () => page.waitForSelector('#main'));
  const found = await timed('guard', async () => {
    await page.goto(`${erp}/search?number=${invoice}`);
    return page.$('#results .booking');
  });
  if (found) throw new Error(`${invoice} is booked already`);
  await timed('goto app', () => page.goto(`${erp}/app`));
  const frame = await timed('frame #main', async () => (await page.waitForSelector('#main')).contentFrame());
  await timed('select #vendor', () => frame.selectOption('#vendor', { label: vendors[i % 3] }));
  await timed('fill #invoice', () => frame.fill('#invoice', invoice));
  await timed('fill #date', () => frame.fill('#date', '23.10.2026'));
  await timed('fill #amount', () => frame.fill('#amount', `${i}.234,56`));
  await timed('click #save', () => frame.click('#save'));
  await timed('wait for #booking-number', () => frame.waitForSelector('#booking-number'));
  await timed('read #booking-number', () => frame.textContent('#booking-number'));
  await context.close();
  bookings.push(performance.now() - start);
  actions.push(times);
}
await browser.close();
console.log(JSON.stringify({ actions, bookings }));
