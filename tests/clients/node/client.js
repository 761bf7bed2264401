// Runs one cos-nodejs-sdk-v5 call against the local stand-in and prints its result as JSON on stdout.
// Usage: node client.js <method> '<params as JSON>'   (config from COS_PROXY, COS_SECRET_ID, COS_SECRET_KEY)
// The SDK is used unmodified: it addresses <bucket>.cos.<region>.myqcloud.com and reaches the stand-in through
// its own `Proxy` option, as it would reach COS through a corporate proxy.
'use strict';
const COS = require('cos-nodejs-sdk-v5');

const [method, raw] = process.argv.slice(2);
const params = JSON.parse(raw || '{}');
const cos = new COS({
  SecretId: process.env.COS_SECRET_ID,
  SecretKey: process.env.COS_SECRET_KEY,
  Proxy: process.env.COS_PROXY,
  Protocol: 'http:',
});

function done(err, data) {
  if (err) {
    const out = { error: { statusCode: err.statusCode, code: err.code || (err.error && err.error.Code), message: String(err.message || (err.error && err.error.Message) || err) } };
    process.stdout.write(JSON.stringify(out));
    process.exit(2);
  }
  if (data && Buffer.isBuffer(data.Body)) {
    data.Body = { base64: data.Body.toString('base64') };
  }
  process.stdout.write(JSON.stringify({ data }));
}

if (method === 'getObjectUrl') {
  // synchronous form: returns the presigned URL
  done(null, { Url: cos.getObjectUrl(params) });
} else if (typeof cos[method] !== 'function') {
  done(new Error(`no such SDK method ${method}`));
} else {
  if (params.BodyBase64 !== undefined) {
    params.Body = Buffer.from(params.BodyBase64, 'base64');
    delete params.BodyBase64;
  }
  cos[method](params, done);
}
