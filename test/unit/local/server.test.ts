import { describe, expect, it } from 'vitest';
import { matchRoute } from '../../../shared/local/server.js';

describe('matchRoute', () => {
  it('matches resource templates and decodes parameters once', () => {
    const m = matchRoute('POST', '/models/my%20model/predict');
    expect(m && 'route' in m && m.route.resource).toBe('/models/{model}/predict');
    expect(m && 'params' in m && m.params).toEqual({ model: 'my model' });
  });

  it('refuses a parameter that decodes to "..", "." or a "/" (400 INVALID_PATH)', () => {
    for (const p of ['/models/..%2Fx/predict', '/models/%2e%2e/predict', '/models/%2E/predict', '/models/a%5Cb/predict']) {
      expect(() => matchRoute('POST', p), p).toThrow(expect.objectContaining({ status: 400, code: 'INVALID_PATH' }));
    }
  });

  it('tells a wrong method from an unknown path', () => {
    expect(matchRoute('DELETE', '/models/x')).toEqual({ methodMismatch: true });
    expect(matchRoute('GET', '/nope')).toBeUndefined();
    expect(matchRoute('GET', '/models/../x/predict')).toBeUndefined();
  });
});

describe('matchRoute with broken percent-encoding', () => {
  it('answers 400 INVALID_PATH instead of failing', async () => {
    const { HttpError } = await import('../../../shared/local/server.js');
    expect(() => matchRoute('GET', '/models/%E0')).toThrow(HttpError);
    try {
      matchRoute('GET', '/models/%E0');
    } catch (err) {
      expect(err).toMatchObject({ status: 400, code: 'INVALID_PATH' });
    }
  });
});
