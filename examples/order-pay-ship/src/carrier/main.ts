// The simulated carrier process: `node --import tsx src/carrier/main.ts` (see README for its variables).
import { runService } from '../shared/process.js';
import { carrierConfig, startCarrierService } from './service.js';

runService('carrier', () => startCarrierService(carrierConfig(process.env)));
