/**
 * One lane of work per partition: work given for a partition runs after the work given for it
 * before has settled (succeeded or failed), never beside it; different partitions run
 * independently. The transactional loop puts each partition's batches and its punctuations
 * in its lane, so a punctuation never reads or changelogs state a batch is halfway through,
 * and a partition's transactional producer never has two transactions open.
 */
export class PartitionLanes {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(work);
    const tail = result.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    // A lane with nothing waiting is forgotten, so keys of partitions long gone do not pile up.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Lanes with work given and not yet settled (for tests). */
  get busy(): number {
    return this.tails.size;
  }
}
