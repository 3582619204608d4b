/**
 * /storage, /nodes/{node}/storage/..., download-url and query-url-metadata. Sources:
 * proxmox/pve-storage at 0c56bad (src/PVE/API2/Storage/Status.pm 737-913 download_url,
 * Content.pm), proxmox/pve-manager at 14a22df (PVE/API2/Nodes.pm query_url_metadata).
 */
import { Ctx } from "./vm";
import { die, paramError } from "./state";
import { startTask } from "./tasks";

/**
 * pve-storage src/PVE/Storage.pm storage_check_node 264-278 (0c56bad): a storage restricted to
 * other nodes "is not available on node 'N'".
 */
const onNode = (s: Ctx["c"]["storages"][string], node: string) => !s.nodes || s.nodes.includes(node);
function storageOn(c: Ctx["c"], node: string, storage: string) {
  if (!c.nodes.includes(node)) die(`no such cluster node '${node}'\n`);
  const s = c.storages[storage];
  if (!s) die(`storage '${storage}' does not exist\n`);
  if (!onNode(s!, node)) die(`storage '${storage}' is not available on node '${node}'\n`);
  return s!;
}

const used = (c: Ctx["c"], storage: string) => Object.values(c.volumes).filter((v) => v.storage === storage).reduce((n, v) => n + v.size, 0);

export const storageConfigs = ({ c }: Ctx) => Object.entries(c.storages).map(([storage, s]) => ({ storage, type: s.type, content: s.content.join(","), shared: s.shared ? 1 : 0 }));

/**
 * Status.pm index 225-262 over Storage.pm storage_info 1440-1478: every storage is listed, one
 * not available on this node with enabled 0 and active 0; with `content`, only enabled ones.
 */
export function nodeStorages({ c, params }: Ctx, node: string) {
  return Object.entries(c.storages)
    .filter(([, s]) => !params.content || (s.content.includes(params.content) && onNode(s, node)))
    .map(([storage, s]) => {
      const on = onNode(s, node) ? 1 : 0;
      const u = on ? used(c, storage) : 0;
      return { storage, type: s.type, content: s.content.join(","), shared: s.shared ? 1 : 0, active: on, enabled: on, ...(on ? { total: s.total, used: u, avail: s.total - u } : { total: 0, used: 0, avail: 0 }) };
    });
}

export function storageStatus({ c }: Ctx, node: string, storage: string) {
  const s = storageOn(c, node, storage);
  const u = used(c, storage);
  return { type: s.type, content: s.content.join(","), shared: s.shared ? 1 : 0, active: 1, enabled: 1, total: s.total, used: u, avail: s.total - u };
}

export function content({ c, params }: Ctx, node: string, storage: string) {
  storageOn(c, node, storage);
  return Object.entries(c.volumes)
    .filter(([, v]) => v.storage === storage && (!params.content || v.content === params.content) && (!params.vmid || v.vmid === Number(params.vmid)))
    .map(([volid, v]) => ({ volid, format: v.format, content: v.content, size: v.size, used: v.size, ctime: 1700000000, ...(v.vmid ? { vmid: v.vmid } : {}) }));
}

/** GET content/{volume}: accepts `storage:name` or `name` (Content.pm info: parse_volname). */
function volumeId(storage: string, volume: string) {
  return volume.includes(":") ? volume : `${storage}:${volume}`;
}
export function contentGet({ c }: Ctx, node: string, storage: string, volume: string) {
  storageOn(c, node, storage);
  const v = c.volumes[volumeId(storage, volume)];
  if (!v) die(`volume '${volumeId(storage, volume)}' does not exist\n`);
  return { path: `/dev/pve/${v!.name}`, format: v!.format, size: v!.size, used: v!.size };
}
export function contentDelete({ c, user }: Ctx, node: string, storage: string, volume: string) {
  storageOn(c, node, storage);
  const id = volumeId(storage, volume);
  const v = c.volumes[id];
  if (!v) die(`volume '${id}' does not exist\n`);
  // no in-use check: pve-storage API2/Storage/Content.pm 495-525 frees the volume in the task
  return startTask(c, node, "imgdel", volume, user, () => {
    delete c.volumes[id];
  });
}

/** query-url-metadata: the file's name and size as the server would report them. */
export function urlMetadata({ c, params }: Ctx) {
  const size = c.urls[params.url];
  if (size === undefined) die(`invalid server response: '404 Not Found'\n`);
  return { filename: decodeURIComponent(new URL(params.url).pathname.split("/").pop() ?? ""), mimetype: "application/octet-stream", size };
}

/**
 * download_url (Status.pm 737-913): the storage must take the content type (the pre-fork
 * "storage '%s' is not configured for content-type '%s'"), `import` needs a disk-image
 * extension; the `download` task fails on a 404 or an existing file ("refusing to override
 * existing file", pve-common Tools.pm 1514-1562).
 */
export function downloadUrl({ c, params, user }: Ctx, node: string, storage: string) {
  const s = storageOn(c, node, storage);
  if (s.type !== "dir" && s.type !== "nfs" && s.type !== "cifs" && s.type !== "cephfs") die(`can't upload to storage type '${s.type}', not a file based storage!\n`);
  const ct = params.content;
  if (!s.content.includes(ct)) die(`storage '${storage}' is not configured for content-type '${ct}'\n`);
  if (ct === "import" && !/\.(qcow2|raw|vmdk|img|ova)$/.test(params.filename)) paramError({ filename: "invalid filename or wrong extension" });
  if (ct === "iso" && !/\.(iso|img)$/i.test(params.filename)) paramError({ filename: "wrong file extension" });
  const volid = `${storage}:${ct}/${params.filename}`;
  // the destination is $path/$filename (Status.pm 903); a dir storage keeps iso under template/iso
  // (pve-storage src/PVE/Storage/Plugin.pm 842)
  const dest = `/var/lib/vz/${ct === "iso" ? "template/iso" : ct === "vztmpl" ? "template/cache" : ct}/${params.filename}`;
  return startTask(c, node, "download", encodeURIComponent(params.filename), user, (log) => {
    log(`downloading ${params.url} to ${dest}`);
    const size = c.urls[params.url];
    // pve-common Tools.pm 1550: "download failed: " and wget's last line on stderr
    if (size === undefined) die(`download failed: ${new Date().toISOString().replace("T", " ").slice(0, 19)} ERROR 404: Not Found.\n`);
    if (c.volumes[volid]) die(`refusing to override existing file '${dest}'\n`);
    c.volumes[volid] = { storage, name: `${ct}/${params.filename}`, size: size!, format: params.filename.split(".").pop()!, content: ct };
  });
}

