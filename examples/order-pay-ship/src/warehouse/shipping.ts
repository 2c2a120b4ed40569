import type { Handler } from '@eventual/consumer';
import { type Checker, type Message, type Outbox, PreparedMessageResolvedError } from '@eventual/outbox';
import { parseSagaCommand, SAGA_REPLY_TYPE, sagaReply } from '@eventual/saga';
import type { Knex } from 'knex';
import { errorText, type Logger } from '../shared/log.js';
import type { ShipmentCommand } from '../shared/messages.js';
import type { CarrierClient } from './carrier-client.js';

export interface ShippingOptions {
  knex: Knex;
  /** The warehouse's outbox: prepare / commit / rollback of the ShipOrder reply. */
  outbox: Outbox;
  carrier: CarrierClient;
  /** The order service's reply topic, whose prepared replies the check-back resolves. */
  replyTopic: string;
  log: Logger;
}

type ShipCommand = Message<ShipmentCommand>;

const sagaIdOf = (command: Message<unknown>): string => parseSagaCommand(command).sagaId;

/** The success reply to ShipOrder. The carrier's booking key is the saga id. */
const shippedReply = (command: ShipCommand) =>
  sagaReply(command, 'success', { orderId: command.payload.orderId, shipmentKey: sagaIdOf(command) });

/**
 * The ship step talks to the carrier, an external system that cannot join the
 * warehouse's transaction. So the success reply is a *prepared* outbox message:
 *
 *   1. In the ShipOrder record's transaction: note the request and prepare the reply.
 *   2. After that commits: ask the carrier to book, idempotently by saga id.
 *   3. Booked: commit the reply. Refused (422): roll it back and reply failure.
 *      No answer (timeout, crash, network): do nothing. The outbox check-back asks the
 *      carrier what really happened (GET /shipments/:key): booked -> commit, never
 *      booked -> roll back (the saga's deadline then re-sends ShipOrder, which books
 *      again by the same key), carrier unreachable -> ask again later.
 *
 * A reply is never published for a booking that does not exist, and a booking that
 * exists is never left without a reply (or, once the saga gave up, a cancellation).
 */
export function createShipping(o: ShippingOptions) {
  const inFlight = new Set<Promise<void>>();
  const track = (work: Promise<void>) => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  };

  /** Marks the local shipment booked unless it was cancelled or refused meanwhile; false then. */
  async function markBooked(db: Knex | Knex.Transaction, orderId: string): Promise<boolean> {
    const rows = await db('shipments')
      .where({ order_id: orderId })
      .whereIn('status', ['requested', 'booked'])
      .update({ status: 'booked', updated_at: db.raw('clock_timestamp()') }, ['order_id']);
    return rows.length > 0;
  }

  const shipOrder: Handler<ShipmentCommand> = async ({ trx, message: command, outbox: send }) => {
    const { orderId } = command.payload;
    // Upsert locks the order's shipment row: a concurrent ShipOrder of the same order waits here.
    const { rows } = await trx.raw(
      `insert into shipments (order_id, saga_id, status, requests) values (?, ?, 'requested', 1)
       on conflict (order_id) do update set requests = shipments.requests + 1, updated_at = clock_timestamp()
       returning status, reason`,
      [orderId, sagaIdOf(command)],
    );
    const shipment = rows[0] as { status: string; reason: string | null };
    if (shipment.status === 'booked') {
      // A re-sent ShipOrder (the saga's deadline passed before our reply arrived):
      // the booking exists, answer success again without calling the carrier.
      await send.enqueue(shippedReply(command));
      return;
    }
    if (shipment.status !== 'requested') {
      const reason = `shipment was ${shipment.status}${shipment.reason ? `: ${shipment.reason}` : ''}`;
      await send.enqueue(sagaReply(command, 'failure', { reason }));
      return;
    }
    const reply = await o.outbox.prepare(shippedReply(command), { trx });
    // knex's after-commit hook: the carrier is called only once the prepared reply is durable.
    trx.executionPromise.then(
      () => track(book(command, reply.id)),
      () => {}, // rolled back: nothing was prepared, the record is retried
    );
  };

  async function book(command: ShipCommand, replyId: string): Promise<void> {
    const { orderId, customerId, sku, quantity } = command.payload;
    try {
      const outcome = await o.carrier.book({ key: sagaIdOf(command), orderId, customerId, sku, quantity });
      if (outcome.booked) await confirm(command, replyId);
      else await refuse(command, replyId, outcome.reason);
    } catch (error) {
      // No answer from the carrier, or our database failed: the reply stays prepared
      // and the check-back resolves it from the carrier's own record.
      o.log(`order ${orderId}: ${errorText(error)}; leaving the reply to the check-back`);
    }
  }

  async function confirm(command: ShipCommand, replyId: string): Promise<void> {
    const { orderId } = command.payload;
    try {
      await o.knex.transaction(async (trx) => {
        await markBooked(trx, orderId);
        await o.outbox.commit(replyId, { trx });
      });
    } catch (error) {
      if (!(error instanceof PreparedMessageResolvedError)) throw error;
      // The check-back asked the carrier before this booking existed (a slow answer)
      // and rolled the reply back; the late commit is refused. The booking is real,
      // so the saga must still hear of it: reply again, unless the shipment was
      // cancelled meanwhile (then the saga has moved on to compensating).
      o.log(`order ${orderId}: booked after the check-back rolled the reply back; replying again`);
      await o.knex.transaction(async (trx) => {
        if (await markBooked(trx, orderId)) await o.outbox.enqueue(trx, shippedReply(command));
      });
    }
  }

  async function refuse(command: ShipCommand, replyId: string, reason: string): Promise<void> {
    const { orderId } = command.payload;
    try {
      await o.knex.transaction(async (trx) => {
        await o.outbox.rollback(replyId, { trx });
        await trx('shipments')
          .where({ order_id: orderId, status: 'requested' })
          .update({ status: 'rejected', reason, updated_at: trx.raw('clock_timestamp()') });
        await o.outbox.enqueue(trx, sagaReply(command, 'failure', { reason: `carrier refused: ${reason}` }));
      });
    } catch (error) {
      if (!(error instanceof PreparedMessageResolvedError)) throw error;
      // Committed already: the check-back found the key booked before this refusal
      // (only possible if the key was cancelled in between). The saga got its answer.
      o.log(`order ${orderId}: carrier refused (${reason}) but the reply was already committed; nothing to do`);
    }
  }

  /**
   * CancelShipment (the ship step's compensation): cancel at the carrier, which keeps
   * the key as cancelled, so a booking attempt still in flight can no longer succeed.
   * Idempotent at the carrier, so a repeat after a crash is harmless. If the carrier
   * cannot be reached, reply a retriable failure: the orchestrator tries again later.
   */
  const cancelShipment: Handler<ShipmentCommand> = async ({ trx, message: command, outbox: send }) => {
    const { orderId } = command.payload;
    const key = sagaIdOf(command);
    try {
      await o.carrier.cancel(key);
    } catch (error) {
      await send.enqueue(sagaReply(command, 'failure', { reason: errorText(error) }, { retriable: true }));
      return;
    }
    await trx.raw(
      `insert into shipments (order_id, saga_id, status) values (?, ?, 'cancelled')
       on conflict (order_id) do update set status = 'cancelled', updated_at = clock_timestamp()`,
      [orderId, key],
    );
    await send.enqueue(sagaReply(command, 'success', { orderId, cancelled: key }));
  };

  /** The check-back's question to the carrier about a prepared ShipOrder reply (key = saga id). */
  const checker: Checker = async (message) => {
    let shipment: Awaited<ReturnType<CarrierClient['find']>>;
    try {
      shipment = await o.carrier.find(message.key);
    } catch (error) {
      o.log(`check-back: ${errorText(error)}; will ask again`);
      return 'unknown';
    }
    if (shipment?.status !== 'booked') return 'rollback';
    await o.knex('shipments').where({ saga_id: message.key, status: 'requested' }).update({ status: 'booked' });
    return 'commit';
  };

  return {
    shipOrder,
    cancelShipment,
    registerChecker: () => o.outbox.registerChecker({ topic: o.replyTopic, type: SAGA_REPLY_TYPE }, checker),
    /** Waits for carrier calls in flight (bounded by the client's timeout). */
    drain: async () => {
      await Promise.allSettled([...inFlight]);
    },
  };
}
