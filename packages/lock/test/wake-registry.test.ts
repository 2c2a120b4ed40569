import { describe, expect, it } from 'vitest';
import { WakeRegistry } from '../src/wake-registry.js';

describe('WakeRegistry', () => {
  it('wakes only the waiter a wake-up names', () => {
    const registry = new WakeRegistry();
    const woken: string[] = [];
    registry.add('1', (cause) => woken.push(`1:${cause}`));
    registry.add('2', (cause) => woken.push(`2:${cause}`));
    registry.wake('2');
    expect(woken).toEqual(['2:notify']);
  });

  it('delivers a wake-up that arrived before its waiter registered (the release raced the queueing)', () => {
    const registry = new WakeRegistry();
    registry.wake('7');
    const woken: string[] = [];
    registry.add('7', (cause) => woken.push(cause));
    expect(woken).toEqual(['notify']);
    registry.delete('7');
    registry.add('7', (cause) => woken.push(cause));
    expect(woken).toEqual(['notify']); // delivered once
  });

  it('wakes every waiter to look again after a reconnect, as a poll', () => {
    const registry = new WakeRegistry();
    const woken: string[] = [];
    registry.add('1', (cause) => woken.push(`1:${cause}`));
    registry.add('2', (cause) => woken.push(`2:${cause}`));
    registry.delete('1');
    registry.wakeAll();
    expect(woken).toEqual(['2:poll']);
  });
});
