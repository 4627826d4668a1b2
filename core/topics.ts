/**
 * EVerest's topic conventions for the system_API module:
 * `<externalPrefix>everest_api/1/system/<moduleId>/{e2m,m2e}/<name>`.
 * replyTo values inside requests never carry the external prefix; it is prepended on the wire.
 */
export const API_ROOT = 'everest_api/1/system/';

export type ReplyTopic = { ok: true; topic: string } | { ok: false; reason: string };

export class Topics {
  readonly moduleId: string;
  readonly prefix: string;
  /** base without the external prefix, as it appears inside replyTo */
  readonly unprefixedBase: string;
  /** base on the wire */
  readonly base: string;

  constructor(moduleId: string, prefix = '') {
    this.moduleId = moduleId;
    this.prefix = prefix;
    this.unprefixedBase = `${API_ROOT}${moduleId}/`;
    this.base = `${prefix}${this.unprefixedBase}`;
  }

  get e2mFilter(): string {
    return `${this.base}e2m/+`;
  }

  e2m(name: string): string {
    return `${this.base}e2m/${name}`;
  }

  m2e(name: string): string {
    return `${this.base}m2e/${name}`;
  }

  /** the e2m name of a wire topic of this module, or undefined */
  inboundName(topic: string): string | undefined {
    const head = `${this.base}e2m/`;
    if (!topic.startsWith(head)) return undefined;
    const name = topic.slice(head.length);
    return name && !name.includes('/') ? name : undefined;
  }

  /**
   * The wire topic to reply on. Only this module's own reply topics are accepted
   * (`everest_api/1/system/<moduleId>/m2e/reply/<id>`), never wildcards or other modules' topics.
   */
  replyTopic(replyTo: unknown): ReplyTopic {
    if (typeof replyTo !== 'string') return { ok: false, reason: 'headers.replyTo is not a string' };
    if (replyTo.length > 512) return { ok: false, reason: 'headers.replyTo is longer than 512 characters' };
    const head = `${this.unprefixedBase}m2e/reply/`;
    if (!replyTo.startsWith(head)) return { ok: false, reason: `headers.replyTo is not under ${head}` };
    const id = replyTo.slice(head.length);
    if (!/^[A-Za-z0-9._:-]{1,128}$/.test(id)) return { ok: false, reason: 'headers.replyTo has an invalid reply id' };
    return { ok: true, topic: `${this.prefix}${replyTo}` };
  }
}
