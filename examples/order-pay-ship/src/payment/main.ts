// The payment service process: `node --import tsx src/payment/main.ts` (see README for its variables).
import { runService } from '../shared/process.js';
import { paymentConfig, startPaymentService } from './service.js';

runService('payment', () => startPaymentService(paymentConfig(process.env)));
