// The example as a library: the demo and its parts, for tests and for your own experiments.
export { type CarrierFaults, DEMO_FAULTS, NO_FAULTS } from './carrier/faults.js';
export { type ChaosOptions, DEFAULT_CHAOS } from './demo/chaos.js';
export { checkInvariants, type InvariantResult } from './demo/invariants.js';
export { type DemoOptions, runDemo } from './demo/run.js';
export { formatSummary, type Summary } from './demo/summary.js';
export { type RunningInfrastructure, startWorld, type World, type WorldOptions } from './demo/world.js';
export { type OrderData, orderFulfilment } from './order/saga.js';
export { type CustomerSeed, demoSeed, type ProductSeed, type SeedData } from './shared/demo-data.js';
export { GROUP_SETTINGS } from './shared/kafka.js';
export { seededRandom } from './shared/random.js';
export { allTopics, PARTITIONS, type Topics } from './shared/topics.js';
