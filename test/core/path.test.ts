import { describe, expect, it } from 'vitest';
import { normalizePath } from '../../src/core/path.js';

describe('normalizePath', () => {
  it.each([
    ['/', '/'],
    ['/orders/42', '/orders/42'],
    ['/api/v1/', '/api/v1/'],
    ['/a/.well-known', '/a/.well-known'],
    ['/a/..b/c..', '/a/..b/c..'],
    ['/shop.v1.Orders/%44elete', '/shop.v1.Orders/Delete'],
    ['/%61%70%69/%7e%2D%5f%30', '/api/~-_0'],
    ['/files/a%20b', '/files/a%20b'],
    ['/q/%3b%3f%23', '/q/%3B%3F%23'],
    ['/caf%c3%a9', '/caf%C3%A9'],
  ])('decodes percent-encoded unreserved characters and upper-cases other escapes: %s → %s', (path, expected) => {
    expect(normalizePath(path)).toEqual({ ok: true, path: expected });
  });

  it('decodes each escape once, never a second time (%2544 stays an encoded "%" followed by 44)', () => {
    expect(normalizePath('/a/%2544')).toEqual({ ok: true, path: '/a/%2544' });
  });

  it.each([
    ['', 'no leading "/"'],
    ['orders', 'no leading "/"'],
    ['/a/%2e%2e/admin', 'an encoded "." (%2E)'],
    ['/a%2Fadmin', 'an encoded "/" (%2F)'],
    ['/a%5cadmin', 'an encoded "\\" (%5C)'],
    ['/a%00', 'an encoded control character'],
    ['/a%0d%0aX', 'an encoded control character'],
    ['/a%7F', 'an encoded control character'],
    ['/a%', 'an invalid percent-encoding'],
    ['/a%4', 'an invalid percent-encoding'],
    ['/a%zz', 'an invalid percent-encoding'],
    ['/a\\b', 'a backslash'],
    ['/a\tb', 'a control character'],
    ['/a/../admin', 'a ".." segment'],
    ['/a/./b', 'a "." segment'],
    ['/..', 'a ".." segment'],
    ['/x/.', 'a "." segment'],
    ['//admin', 'an empty segment ("//")'],
    ['/a//b', 'an empty segment ("//")'],
    ['/admin;jsessionid=1', 'a ";" (path parameters)'],
    ['/public/..;/admin', 'a ";" (path parameters)'],
  ])('refuses %j: it has %s', (path, problem) => {
    expect(normalizePath(path)).toEqual({ ok: false, problem });
  });
});
