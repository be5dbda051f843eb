import { describe, expect, it } from 'vitest';
import { matchRoute } from '../../../shared/local/server.js';

describe('matchRoute', () => {
  it('matches resource templates and decodes parameters once', () => {
    const m = matchRoute('POST', '/models/my%20model/predict');
    expect(m && 'route' in m && m.route.resource).toBe('/models/{model}/predict');
    expect(m && 'params' in m && m.params).toEqual({ model: 'my model' });
  });

  it('passes an encoded "../x" through as a parameter for the handler to refuse', () => {
    const m = matchRoute('POST', '/models/..%2Fx/predict');
    expect(m && 'params' in m && m.params.model).toBe('../x');
  });

  it('tells a wrong method from an unknown path', () => {
    expect(matchRoute('DELETE', '/models/x')).toEqual({ methodMismatch: true });
    expect(matchRoute('GET', '/nope')).toBeUndefined();
    expect(matchRoute('GET', '/models/../x/predict')).toBeUndefined();
  });
});
