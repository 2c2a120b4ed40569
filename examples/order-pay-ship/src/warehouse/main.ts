// The warehouse service process: `node --import tsx src/warehouse/main.ts` (see README for its variables).
import { runService } from '../shared/process.js';
import { startWarehouseService, warehouseConfig } from './service.js';

runService('warehouse', () => startWarehouseService(warehouseConfig(process.env)));
