// A web upload page as a developer writes one: temporary keys from its own backend (/sts), cos-js-sdk-v5 uploads
// straight to COS (here `superres local`, which the browser reaches as its HTTP proxy), then the super-resolved
// result is shown from a presigned URL. Each step's outcome goes to window.__results for the test to read.
'use strict';

window.__results = {};

async function json(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function call(cos, method, params) {
  return new Promise((resolve, reject) => cos[method](params, (err, data) => (err ? reject(err) : resolve(data))));
}

function canvasPng(width, height, noise) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < image.data.length; i += 4) {
    const x = (i / 4) % width;
    image.data[i] = noise ? Math.random() * 255 : (x * 255) / width;
    image.data[i + 1] = noise ? Math.random() * 255 : 128;
    image.data[i + 2] = noise ? Math.random() * 255 : 255 - (x * 255) / width;
    image.data[i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
}

async function waitForResult(cos, config, key) {
  const deadline = Date.now() + 180000;
  while (Date.now() < deadline) {
    try {
      await call(cos, 'headObject', { Bucket: config.Bucket, Region: config.Region, Key: key });
      return;
    } catch (err) {
      if (err.statusCode !== 404) throw err;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`no result at ${key}`);
}

async function show(cos, config, key) {
  const { Url } = await call(cos, 'getObjectUrl', { Bucket: config.Bucket, Region: config.Region, Key: key, Sign: true });
  const item = document.createElement('li');
  const img = document.createElement('img');
  item.appendChild(img);
  document.getElementById('uploads').appendChild(item);
  await new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new Error(`the result did not load: ${Url}`));
    img.src = Url;
  });
  return { width: img.naturalWidth, height: img.naturalHeight };
}

// POST Object as Tencent's demo/noSDK/post_sign.html sends it: the backend signs a policy, the page posts a form.
async function postObject(params) {
  const sign = await json(`/post-policy?name=${encodeURIComponent(params.Key.split('/').pop())}`);
  const form = new FormData();
  form.append('key', sign.cosKey);
  if (sign.securityToken) form.append('x-cos-security-token', sign.securityToken);
  form.append('q-sign-algorithm', sign.qSignAlgorithm);
  form.append('q-ak', sign.qAk);
  form.append('q-key-time', sign.qKeyTime);
  form.append('q-signature', sign.qSignature);
  form.append('policy', sign.policy);
  form.append('file', params.Body, 'upload.png'); // last, as COS requires
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `http://${sign.cosHost}/`);
    xhr.upload.onprogress = (e) => params.onProgress({ percent: e.lengthComputable ? e.loaded / e.total : 0 });
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300
      ? resolve({ ETag: xhr.getResponseHeader('etag') })
      : reject(Object.assign(new Error(xhr.responseText), { statusCode: xhr.status })));
    xhr.onerror = () => reject(new Error(`uploading ${sign.cosKey} failed: check the bucket's CORS rule`));
    xhr.send(form);
  });
}

async function upload(cos, config, method, name, body, extra) {
  const key = config.Prefix + name;
  const progress = [];
  const params = { Bucket: config.Bucket, Region: config.Region, Key: key, Body: body,
                   onProgress: (info) => progress.push(info.percent), ...extra };
  const data = method === 'postObject' ? await postObject(params) : await call(cos, method, params);
  // The result's name, as a site derives it (RESULT_NAMES=append, the default): prefix + key + '.png'
  const resultKey = `${config.ResultPrefix}${key}.png`;
  await waitForResult(cos, config, resultKey);
  const shown = await show(cos, config, resultKey);
  return { key, etag: data.ETag || null, size: body.size, progress, shown };
}

async function main() {
  const config = await json('/config');
  const cos = new COS({
    Protocol: 'http:',
    getAuthorization(options, callback) {
      json('/sts').then((keys) => callback(keys), (err) => callback({ error: String(err) }));
    },
  });
  const small = await canvasPng(64, 48, false);
  const large = await canvasPng(1000, 1000, true); // about 3 MB: uploadFile sends it in parts
  const steps = {
    putObject: () => upload(cos, config, 'putObject', 'put.png', small),
    uploadFile: () => upload(cos, config, 'uploadFile', 'multi.png', large, { SliceSize: 1024 * 1024, ChunkSize: 1024 * 1024 }),
    postObject: () => upload(cos, config, 'postObject', 'post.png', small),
    outsidePrefix: () => call(cos, 'putObject', { Bucket: config.Bucket, Region: config.Region,
                                                  Key: 'uploads/u2/intruder.png', Body: small }),
  };
  for (const [name, step] of Object.entries(steps)) {
    try {
      window.__results[name] = { ok: true, ...(await step()) };
    } catch (err) {
      window.__results[name] = { ok: false, statusCode: err.statusCode || null, code: err.code || null,
                                 message: String(err.message || err) };
    }
  }
}

main().catch((err) => { window.__results.fatal = String(err && err.stack || err); }).finally(() => { window.__done = true; });
