/**
 * The widget's stylesheet, scoped to its shadow root. Colours come in as custom properties set
 * on the host element through the CSSOM, which no style-src policy blocks.
 */

const CSS = `
:host{all:initial}
*,*::before,*::after{box-sizing:border-box}
[hidden]{display:none!important}
svg{fill:currentColor;display:block}
button{font:inherit;color:inherit;cursor:pointer;border:0;background:none;padding:0;margin:0}
:focus-visible{outline:2px solid var(--parley-p);outline-offset:2px}
.root{position:fixed;z-index:2147483000;bottom:20px;right:20px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#111827;text-align:left;-webkit-font-smoothing:antialiased}
.root.left{right:auto;left:20px}
.launcher{position:relative;width:56px;height:56px;border-radius:50%;background:var(--parley-p);color:var(--parley-t);display:grid;place-items:center;box-shadow:0 6px 20px rgba(0,0,0,.22);transition:transform .15s}
.launcher:hover{transform:scale(1.05)}
.launcher svg{width:28px;height:28px}
.launcher img{width:32px;height:32px;object-fit:contain;border-radius:50%}
.badge{position:absolute;top:-3px;right:-3px;min-width:20px;height:20px;padding:0 5px;border-radius:10px;background:#dc2626;color:#fff;font-size:12px;font-weight:600;line-height:20px;text-align:center}
.greeting{position:absolute;bottom:68px;right:0;width:max-content;max-width:260px;display:flex;align-items:flex-start;gap:2px;background:#fff;border-radius:12px;box-shadow:0 6px 24px rgba(0,0,0,.18);padding:4px}
.left .greeting{right:auto;left:0}
.greeting-text{padding:6px 4px 6px 10px;text-align:left;border-radius:8px}
.greeting-close{width:24px;height:24px;border-radius:6px;color:#6b7280;display:grid;place-items:center;flex:none}
.greeting-close svg{width:14px;height:14px}
.panel{position:absolute;bottom:72px;right:0;width:380px;max-width:calc(100vw - 40px);height:600px;max-height:calc(100vh - 112px);display:flex;flex-direction:column;overflow:hidden;background:#fff;border-radius:16px;box-shadow:0 12px 40px rgba(0,0,0,.25)}
.left .panel{right:auto;left:0}
.head{display:flex;align-items:center;gap:10px;padding:12px 10px 12px 16px;background:var(--parley-p);color:var(--parley-t)}
.head :focus-visible{outline-color:var(--parley-t)}
.avatar{width:36px;height:36px;flex:none;border-radius:50%;overflow:hidden;display:grid;place-items:center;background:rgba(255,255,255,.22);font-weight:600;font-size:16px}
.avatar img{width:100%;height:100%;object-fit:cover}
.head-text{flex:1;min-width:0}
.title{font-weight:600;font-size:15px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.status{font-size:12px;opacity:.85;min-height:17px}
.close{width:34px;height:34px;border-radius:8px;display:grid;place-items:center;flex:none}
.close:hover{background:rgba(255,255,255,.16)}
.close svg{width:20px;height:20px}
.banner{padding:8px 16px;font-size:13px;background:#fef3c7;color:#78350f;border-bottom:1px solid #fde68a}
.log{flex:1;overflow-y:auto;overscroll-behavior:contain;padding:16px 14px;display:flex;flex-direction:column;gap:10px;background:#f9fafb}
.msg{display:flex;flex-direction:column;align-items:flex-start;max-width:88%;align-self:flex-start}
.msg.user{align-self:flex-end;align-items:flex-end}
.bubble{padding:9px 13px;border-radius:14px;background:#fff;border:1px solid #e5e7eb;overflow-wrap:anywhere}
.user .bubble{background:var(--parley-p);color:var(--parley-t);border-color:transparent;white-space:pre-wrap}
.pending .bubble{opacity:.7}
.failed .bubble{opacity:.55}
.bubble p,.bubble ul,.bubble ol,.bubble pre{margin:0 0 8px}
.bubble>:last-child{margin-bottom:0}
.bubble ul,.bubble ol{padding-left:22px}
.bubble li+li{margin-top:2px}
.bubble code{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f3f4f6;border-radius:4px;padding:1px 4px}
.bubble pre{background:#f3f4f6;border-radius:8px;padding:8px 10px;overflow-x:auto}
.bubble pre code{background:none;padding:0;white-space:pre}
.bubble a,.sources a{color:#1d4ed8;text-decoration:underline}
.sources{margin:6px 2px 0;padding:0;list-style:none;font-size:12.5px;color:#4b5563}
.sources-label{margin:6px 2px 0;font-size:12px;font-weight:600;color:#6b7280}
.meta{display:flex;gap:6px;align-items:center;margin-top:3px;font-size:12px;color:#6b7280}
.meta button{color:#b91c1c;text-decoration:underline}
.rate{display:flex;gap:2px;margin-top:2px}
.rate button{width:28px;height:28px;border-radius:6px;color:#9ca3af;display:grid;place-items:center}
.rate button:hover,.rate button[aria-pressed="true"]{color:#1f2937;background:#e5e7eb}
.rate svg{width:15px;height:15px}
.suggestions{display:flex;flex-wrap:wrap;gap:6px}
.suggestions button{border:1px solid #d1d5db;background:#fff;border-radius:16px;padding:6px 12px;font-size:13px;text-align:left}
.suggestions button:hover{border-color:var(--parley-p)}
.typing{display:flex;gap:4px;align-self:flex-start;padding:13px 14px;background:#fff;border:1px solid #e5e7eb;border-radius:14px}
.typing i{width:6px;height:6px;border-radius:50%;background:#9ca3af;animation:parley-blink 1.2s infinite ease-in-out}
.typing i:nth-of-type(2){animation-delay:.2s}
.typing i:nth-of-type(3){animation-delay:.4s}
@keyframes parley-blink{0%,80%,100%{opacity:.3}40%{opacity:1}}
.composer{display:flex;gap:8px;align-items:flex-end;padding:10px 12px;border-top:1px solid #e5e7eb;background:#fff;margin:0}
.composer textarea{flex:1;min-height:40px;max-height:120px;resize:none;margin:0;border:1px solid #d1d5db;border-radius:10px;padding:9px 12px;font:inherit;line-height:1.4;color:inherit;background:#fff}
.composer textarea:focus-visible{outline:2px solid var(--parley-p);outline-offset:-1px}
.send{width:40px;height:40px;flex:none;border-radius:10px;background:var(--parley-p);color:var(--parley-t);display:grid;place-items:center}
.send svg{width:20px;height:20px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:639.98px){
.open .panel{position:fixed;inset:0;width:100%;max-width:none;height:100%;max-height:none;border-radius:0}
.open .launcher,.open .greeting{display:none}
}
@media (prefers-reduced-motion:reduce){.typing i{animation:none}.launcher{transition:none}}
`;

/** Constructable stylesheets where the browser has them (no style-src 'unsafe-inline' needed). */
export function applyStyles(root: ShadowRoot): void {
  try {
    if ("adoptedStyleSheets" in root && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
      return;
    }
  } catch {
    // Fall through to a <style> element.
  }
  const style = root.ownerDocument.createElement("style");
  style.textContent = CSS;
  root.append(style);
}

export function applyColors(host: HTMLElement, primary: string, text: string): void {
  host.style.setProperty("--parley-p", primary);
  host.style.setProperty("--parley-t", text);
}
