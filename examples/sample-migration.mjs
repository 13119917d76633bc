#!/usr/bin/env node
// A stand-in for a real migration (docker-compose.yml runs it under `redis-once run`): prints its
// steps and the fencing token it got, and takes a few seconds so the other replicas visibly wait.
import { setTimeout as sleep } from 'node:timers/promises';

const steps = ['create table accounts', 'add column accounts.email', 'create index accounts_email_idx'];
const token = process.env.ONCE_FENCING_TOKEN ?? '(not run by redis-once)';
const stepMs = Number(process.env.SAMPLE_STEP_MS ?? 1000);

console.log(`migration: attempt ${process.env.ONCE_ATTEMPT ?? '?'}, fencing token ${token}`);
if (process.env.ONCE_PREVIOUS_OUTCOME) {
  console.log(
    `migration: the previous attempt ${process.env.ONCE_PREVIOUS_OUTCOME}; steps are idempotent, re-running`,
  );
}
for (const step of steps) {
  console.log(`migration: ${step}`);
  await sleep(stepMs);
}
console.log('migration: done');
