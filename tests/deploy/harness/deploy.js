#!/usr/bin/env node
/*
 * Deploys the project's layers/serverless.yml, then serverless.yml, with Tencent's own deployment code and
 * the cloud stubbed at its two doors, and prints what would have reached Tencent Cloud as JSON on stdout.
 *
 *   node deploy.js PROJECT_DIR [ENV_FILE]        (ENV_FILE defaults to PROJECT_DIR/.env.example)
 *
 * Real code on the path (pinned in package.json):
 * - @serverless/components (the `components` CLI, the engine Tencent's `scf` CLI wraps): reads serverless.yml
 *   (loadInstanceConfigUncached) and resolves ${env:NAME} from the process environment (resolveVariables),
 *   which the CLI fills from .env with dotenv. An unset variable becomes undefined, as in the real CLI.
 * - @serverless/platform-client-china `instance.run`: resolves `src`, applies `exclude`, zips the files and
 *   PUTs the zip over HTTP to the upload URL the platform hands out. Here that URL is a local HTTP server, so
 *   the zip that would leave the machine is captured byte for byte.
 * - tencent-component-toolkit `Scf` / `Layer`: the code the scf and layer components run in Tencent's engine;
 *   it turns inputs into CreateFunction, CreateTrigger, PublishLayerVersion, ... bodies and sends each through
 *   `Capi.prototype.request`, which is stubbed here to record the body and answer like the API. An action the
 *   stub does not model is answered with the API's InvalidAction error, so a new call cannot pass unnoticed.
 *
 * Two steps belong to the platform's engine, whose code is not published, and are done here in a few lines:
 * resolving ${output:stage:app:instance.key} / ${stage} / ${app} from the deployed layer's outputs, and the
 * component glue that hands the uploaded code to the toolkit as {bucket, object}.
 */
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

const dotenv = require('dotenv');
const JSZip = require('jszip');
const cliUtils = require('@serverless/components/src/cli/utils');
const platformApi = require('@serverless/platform-client-china/src/api');
const platformInstance = require('@serverless/platform-client-china/src/instance');
const { Scf, Layer } = require('tencent-component-toolkit');

const toolkitDir = path.dirname(require.resolve('tencent-component-toolkit/package.json'));
const { Capi } = require(require.resolve('@tencent-sdk/capi', { paths: [toolkitDir] }));

const CREDENTIALS = { SecretId: 'AKIDharness', SecretKey: 'harness-secret' };
const APPID = '1250000000';

// ---- the cloud API, stubbed: record every action body, answer the way SCF does ----------------------------
const calls = [];
const functions = new Map();
const layers = new Map();

function answer(body) {
  const { Action } = body;
  const fn = functions.get(`${body.Namespace || 'default'}/${body.FunctionName}`);
  switch (Action) {
    case 'GetFunction':
      if (!fn) {
        return { Error: { Code: 'ResourceNotFound.FunctionName', Message: `function ${body.FunctionName} not found` } };
      }
      return { ...fn, Status: 'Active', Qualifier: '$LATEST', Triggers: fn.Triggers || [] };
    case 'CreateFunction':
      functions.set(`${body.Namespace || 'default'}/${body.FunctionName}`, { ...body, Triggers: [] });
      return {};
    case 'ListTriggers':
      return { Triggers: (fn && fn.Triggers) || [], TotalCount: (fn && fn.Triggers.length) || 0 };
    case 'CreateTrigger': {
      const info = { Type: body.Type, TriggerName: body.TriggerName, TriggerDesc: body.TriggerDesc,
        Enable: body.Enable === 'OPEN' ? 1 : 0, Qualifier: body.Qualifier };
      if (fn) fn.Triggers.push(info);
      return { TriggerInfo: info };
    }
    case 'PublishLayerVersion': {
      const version = (layers.get(body.LayerName) || 0) + 1;
      layers.set(body.LayerName, version);
      return { LayerVersion: version };
    }
    case 'GetLayerVersion':
      return { LayerName: body.LayerName, LayerVersion: body.LayerVersion, Status: 'Active' };
    case 'GetAlias':
      // every function has the $DEFAULT alias, pointing at $LATEST
      if (!fn) return { Error: { Code: 'ResourceNotFound.Function', Message: `function ${body.FunctionName} not found` } };
      return { Name: body.Name, FunctionVersion: '$LATEST',
        RoutingConfig: { AdditionalVersionWeights: [], AddtionVersionMatchs: [] } };
    default:
      // an action this stub does not model is refused as the API refuses an unknown action, never answered {}
      return { Error: { Code: 'InvalidAction', Message: `the harness does not model ${Action}` } };
  }
}

Capi.prototype.request = async function request(data, options) {
  const body = JSON.parse(JSON.stringify(data));
  calls.push({ service: this.options.ServiceType, host: options && options.host, body });
  const response = answer(body);
  return { Response: { ...response, RequestId: `harness-${calls.length}` } };
};

// ---- the platform's upload URL: a local HTTP server that keeps what the CLI PUTs ----------------------------
const uploads = [];
let server;
let baseUrl;

function startUploadServer() {
  server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'PUT') {
        uploads.push({ path: req.url, body: Buffer.concat(chunks) });
        res.writeHead(200).end();
      } else if (req.method === 'GET') {
        const found = uploads.find((u) => u.path === req.url.replace('/download/', '/upload/'));
        if (found) res.writeHead(200).end(found.body);
        else res.writeHead(404).end();
      } else {
        res.writeHead(405).end();
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    baseUrl = `http://127.0.0.1:${server.address().port}`;
    resolve();
  }));
}

platformApi.instance.preCache = async (sdk, orgName, appName, stageName, instanceName) => ({
  changesUploadUrl: `${baseUrl}/upload/${appName}/${stageName}/${instanceName}.zip`,
  srcDownloadUrl: `${baseUrl}/download/${appName}/${stageName}/${instanceName}.zip`,
  previousMapDownloadUrl: `${baseUrl}/none`,
});

// ---- the engine side: what the scf / layer component does with the instance the CLI sent --------------------
const deployed = {};

async function zipListing(url) {
  const upload = uploads.find((u) => `${baseUrl}${u.path}` === url.replace('/download/', '/upload/'));
  if (!upload) throw new Error(`nothing was uploaded for ${url}`);
  const zip = await JSZip.loadAsync(upload.body);
  return Object.keys(zip.files).filter((n) => !zip.files[n].dir && n !== 'src.map').sort();
}

platformApi.instance.run = async (sdk, instance, method) => {
  if (method !== 'deploy') throw new Error(`harness handles deploy only, not ${method}`);
  const inputs = { ...instance.inputs };
  const files = inputs.src ? await zipListing(inputs.src) : [];
  delete inputs.src;
  delete inputs.srcOriginal;
  const region = inputs.region || 'ap-guangzhou';
  let outputs;
  if (instance.componentName === 'layer') {
    const object = `${inputs.name}-layer-harness.zip`;
    outputs = await new Layer(CREDENTIALS, region).deploy({ ...inputs, region,
      bucket: `sls-layer-${region}-code`, object });
  } else if (instance.componentName === 'scf') {
    const code = { bucket: `sls-cloudfunction-${region}-code`, object: `${inputs.name}-harness.zip` };
    const result = await new Scf(CREDENTIALS, region).deploy({ ...inputs, code });
    outputs = { functionName: result.FunctionName, namespace: result.Namespace, runtime: result.Runtime };
  } else {
    throw new Error(`component ${instance.componentName} is not handled by the harness`);
  }
  deployed[instance.instanceName] = { component: instance.componentName, files, outputs };
  return { outputs };
};

// ---- the engine's variable step: ${stage} ${app} ${org} ${name} and ${output:stage:app:instance.key} -------
function resolveEngineVariables(instanceYaml) {
  const scalars = { stage: instanceYaml.stage, app: instanceYaml.app, org: instanceYaml.org, name: instanceYaml.name };
  const unresolved = [];
  const walk = (value) => {
    if (typeof value === 'string') {
      const text = value.replace(/\$\{(stage|app|org|name)\}/g, (_, key) => scalars[key]);
      const output = (match, stage, app, inst, key) => {
        const source = deployed[inst];
        if (!source || stage !== instanceYaml.stage || app !== instanceYaml.app || !(key in source.outputs)) {
          unresolved.push(match);
          return match;
        }
        return source.outputs[key];
      };
      const pattern = /\$\{output:([^:}]+):([^:}]+):([^.}]+)\.([^}]+)\}/g;
      // a value that is one reference keeps the output's type (the layer version is a number)
      const whole = new RegExp(`^${pattern.source}$`).exec(text);
      if (whole) return output(...whole);
      return text.replace(pattern, output);
    }
    if (Array.isArray(value)) return value.map(walk);
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]));
    }
    return value;
  };
  const inputs = walk(instanceYaml.inputs || {});
  if (unresolved.length) throw new Error(`unresolved engine variables: ${unresolved.join(', ')}`);
  return { ...instanceYaml, inputs };
}

// ---- the CLI side: load, resolve ${env:}, resolve src paths, run ------------------------------------------
function loadInstance(dir) {
  const loaded = cliUtils.loadInstanceConfigUncached(dir);
  if (!loaded) throw new Error(`no serverless.yml in ${dir}`);
  loaded.org = loaded.org || 'harness';
  const resolved = cliUtils.resolveVariables(loaded);
  // commands-cn/utils.js loadTencentInstanceConfig: src is made absolute against the instance's folder
  const src = resolved.inputs && resolved.inputs.src;
  if (typeof src === 'string') resolved.inputs.src = path.resolve(dir, src);
  else if (src && typeof src === 'object' && src.src) src.src = path.resolve(dir, src.src);
  return resolved;
}

async function deployInstance(dir) {
  const instanceYaml = resolveEngineVariables(loadInstance(dir));
  const cwd = process.cwd();
  process.chdir(dir); // the CLI runs in the instance's folder
  try {
    await platformInstance.run({ context: {} }, 'deploy', instanceYaml, {}, { force: true });
  } finally {
    process.chdir(cwd);
  }
  return instanceYaml;
}

async function main() {
  const project = path.resolve(process.argv[2] || '.');
  const envFile = path.resolve(process.argv[3] || path.join(project, '.env.example'));
  Object.assign(process.env, dotenv.parse(fs.readFileSync(envFile)));
  const log = console.log;
  console.log = (...args) => process.stderr.write(`${args.join(' ')}\n`); // the toolkit's progress lines
  await startUploadServer();
  try {
    const layerYaml = await deployInstance(path.join(project, 'layers'));
    const functionYaml = await deployInstance(project);
    log(JSON.stringify({
      instances: { layer: { name: layerYaml.name, inputs: layerYaml.inputs },
        function: { name: functionYaml.name, inputs: functionYaml.inputs } },
      deployed,
      calls,
    }, null, 2));
  } finally {
    server.close();
  }
}

module.exports = { answer };

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`deploy harness: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  });
}
