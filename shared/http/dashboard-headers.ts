/**
 * The security headers of the dashboard's files, one definition for both places
 * that serve them: the embedded platform (shared/local/server.ts) and, on AWS, the
 * CloudFront response headers policy (infra/lib/constructs/dashboard.ts).
 */

/**
 * The Content-Security-Policy of the dashboard. Scripts and styles from the page's
 * own origin only (no inline script, no eval, no inline <style>; styles set through
 * the DOM, as Preact and uPlot do, are not affected), images from this origin and the
 * blob: previews of try-it; nothing may frame the page. API calls go to the page's
 * origin, plus `connectSrc` where the API and the upload URLs live elsewhere (on AWS:
 * the API Gateway origin and the S3 endpoint of presigned uploads).
 */
export function dashboardCsp(opts: { connectSrc?: readonly string[] } = {}): string {
  const connect = ["'self'", ...(opts.connectSrc ?? [])].join(' ');
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    `connect-src ${connect}`,
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** The other headers of every dashboard file, as the embedded platform sends them. */
export const DASHBOARD_OTHER_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  // File names carry no content hash: revalidate, so a deploy is seen at the next load.
  'cache-control': 'no-cache',
} as const;
