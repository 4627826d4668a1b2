/** One row of `everest-system doctor`: what was checked, the verdict, what was seen, and how to fix it. */
export type Verdict = 'PASS' | 'WARN' | 'FAIL';

export interface CheckResult {
  check: string;
  result: Verdict;
  detail: string;
  /** what to do about a WARN or FAIL */
  fix?: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

export const pass = (check: string, detail: string): CheckResult => ({ check, result: 'PASS', detail });
export const warn = (check: string, detail: string, fix: string): CheckResult => ({ check, result: 'WARN', detail, fix });
export const fail = (check: string, detail: string, fix: string): CheckResult => ({ check, result: 'FAIL', detail, fix });
