import { describe, expect, it } from 'vitest';
import { EmitOrder } from '../../gateway/broker/emit-order.js';

describe('EmitOrder', () => {
  it('holds an emit until every publish numbered before it was emitted', () => {
    const order = new EmitOrder();
    const emitted: number[] = [];
    for (const c of [1, 2, 3]) order.begin(c);
    order.emit(3, () => emitted.push(3));
    order.emit(2, () => emitted.push(2));
    expect(emitted).toEqual([]);
    order.emit(1, () => emitted.push(1));
    expect(emitted).toEqual([1, 2, 3]);
    expect(order.size).toEqual({ underway: 0, held: 0 });
  });

  it('releases held emits when an earlier publish ends without an emit', () => {
    const order = new EmitOrder();
    const emitted: number[] = [];
    for (const c of [5, 6, 7]) order.begin(c);
    order.emit(7, () => emitted.push(7));
    order.emit(6, () => emitted.push(6));
    order.end(5);
    expect(emitted).toEqual([6, 7]);
    order.end(6);
    order.end(7);
    expect(order.size).toEqual({ underway: 0, held: 0 });
  });

  it('emits at once what it was not told about (another broker id, or a counter of its own)', () => {
    const order = new EmitOrder();
    order.begin(1);
    const emitted: number[] = [];
    order.emit(9, () => emitted.push(9));
    expect(emitted).toEqual([9]);
    expect(order.size).toEqual({ underway: 1, held: 0 });
  });
});
