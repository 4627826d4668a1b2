import type { Logger, ResetType, ResetVetoes } from './api.js';

/** Registry of reset vetoes; a veto that throws counts as an objection. */
export class ResetVetoRegistry implements ResetVetoes {
  readonly #vetoes = new Map<symbol, { owner: string; veto: (type: ResetType) => string | undefined }>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  register(owner: string, veto: (type: ResetType) => string | undefined): () => void {
    const id = Symbol(owner);
    this.#vetoes.set(id, { owner, veto });
    return () => this.#vetoes.delete(id);
  }

  check(type: ResetType): string[] {
    const reasons: string[] = [];
    for (const { owner, veto } of this.#vetoes.values()) {
      try {
        const reason = veto(type);
        if (reason) reasons.push(`${owner}: ${reason}`);
      } catch (err) {
        this.#log.error({ owner, error: (err as Error).message }, 'reset veto failed; counting it as an objection');
        reasons.push(`${owner}: veto failed (${(err as Error).message})`);
      }
    }
    return reasons;
  }
}
