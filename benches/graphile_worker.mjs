// graphile-worker beside clerk's queue benchmark: the same 20,000 no-op
// jobs on the same PostgreSQL, drained by one graphile-worker process with
// its batching (a local queue of 500, completions batched), timed until
// the last job's row is gone; then pickup latency into an idle worker.
// Run by benches/queue_peer.sh, which installs graphile-worker into
// benches/.node from the npm registry.
//
//   node benches/graphile_worker.mjs URL JOBS CONCURRENCY SAMPLES
import { Logger, makeWorkerUtils, run } from "graphile-worker";
import { readFileSync } from "node:fs";
import pg from "pg";

const [url, jobsArg, concurrencyArg, samplesArg] = process.argv.slice(2);
const jobs = Number(jobsArg ?? 20000);
const concurrency = Number(concurrencyArg ?? 16);
const samples = Number(samplesArg ?? 300);

// Quiet, as clerk's benchmark is: a line per job costs more than the job.
const logger = new Logger(() => (level, message) => {
  if (level === "error") console.error(message);
});
const utils = await makeWorkerUtils({ connectionString: url, logger });
await utils.migrate();
const pool = new pg.Pool({ connectionString: url, max: 2 });
const left = async () =>
  Number((await pool.query("SELECT count(*) AS n FROM graphile_worker.jobs")).rows[0].n);

// The machine's busy CPU ticks (user, nice, system, irq, softirq) from
// /proc/stat, as clerk's benchmark reads them; 0 where there is none.
const busyTicks = () => {
  try {
    const t = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    return t[0] + t[1] + t[2] + t[5] + t[6];
  } catch {
    return 0;
  }
};

const started = new Map();
let ran = 0;
const taskList = {
  noop: async (payload) => {
    ran += 1;
    if (payload && payload.sample !== undefined) started.set(payload.sample, performance.now());
  },
};
const preset = {
  worker: {
    localQueue: { size: 500 },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  },
};

let t = performance.now();
for (let i = 0; i < jobs; i += 1000) {
  const batch = Array.from({ length: Math.min(1000, jobs - i) }, () => ({
    identifier: "noop",
    payload: {},
  }));
  await utils.addJobs(batch);
}
const enqueue = jobs / ((performance.now() - t) / 1000);

t = performance.now();
const busy0 = busyTicks();
const runner = await run({
  connectionString: url,
  concurrency,
  noHandleSignals: true,
  pollInterval: 1000,
  taskList,
  preset,
  logger,
});
while ((await left()) > 0) await new Promise((r) => setTimeout(r, 5));
const drain = jobs / ((performance.now() - t) / 1000);
// USER_HZ is 100 on Linux: a tick is 10,000 µs.
const cpuPerJob = ((busyTicks() - busy0) * 10000) / jobs;

// Pickup latency: one job at a time into the idle worker, back to back
// (the next job as soon as the last one started) and after 10 ms of quiet,
// as clerk's benchmark measures it.
const pickup = async (first, gap) => {
  const latencies = [];
  for (let i = first; i < first + samples; i++) {
    if (gap) await new Promise((r) => setTimeout(r, gap));
    const before = performance.now();
    await utils.addJob("noop", { sample: i });
    // The task notes when it started, so this wait's coarse timer does
    // not blur the figure; spinning would take a core from the processes
    // measured.
    while (!started.has(i)) await new Promise((r) => setTimeout(r, 1));
    latencies.push(started.get(i) - before);
  }
  latencies.sort((a, b) => a - b);
  return (p) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))];
};
const backToBack = await pickup(0, 0);
const afterQuiet = await pickup(samples, 10);
console.log(
  `graphile-worker ${concurrency} concurrent, local queue 500, batched completions: ` +
    `enqueue ${enqueue.toFixed(0)} jobs/s  drain ${drain.toFixed(0)} jobs/s  (${jobs} jobs, ${ran - 2 * samples} ran, ${cpuPerJob.toFixed(0)} µs CPU/job)`,
);
for (const [how, pct] of [["back to back", backToBack], ["after 10 ms quiet", afterQuiet]]) {
  console.log(
    `graphile-worker pickup latency into an idle worker, ${how} (${samples} single jobs): ` +
      `p50 ${pct(50).toFixed(2)} ms  p90 ${pct(90).toFixed(2)} ms  p99 ${pct(99).toFixed(2)} ms`,
  );
}
await runner.stop();
await utils.release();
await pool.end();
