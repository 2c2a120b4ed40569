// The order service process: `node --import tsx src/order/main.ts` (see README for its variables).
import { runService } from '../shared/process.js';
import { orderConfig, startOrderService } from './service.js';

runService('order', () => startOrderService(orderConfig(process.env)));
