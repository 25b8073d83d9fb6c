"""The gateway's web page: one HTML/CSS/JS document served at ``GET /``, no external assets.

``PAGE`` is a bytes constant so that a frozen build keeps it in flash (a bytes literal in a frozen
module costs no RAM)::

    from gateway.web_page import PAGE
    return PAGE, 200, {"Content-Type": "text/html; charset=utf-8"}

The page has two views: the main view (live values, energy, status) and ``#settings`` (the
config.json editor). Live values arrive over ``EventSource("/api/events")`` (``event: state``, data
= the /api/state JSON); while the stream is not open the page polls ``/api/state`` every 5 s, and
it says "connection lost" when neither has answered for 12 s. Changing settings sends the header
``X-Requested-With: rbamp`` (the server's guard against cross-site requests).

Element ids, stable for tests (``<key>`` is a module key such as ``0x50``, ``<n>`` a channel 1..,
``<part>`` one of total, today, yesterday, month, last-month):

    conn                        the connection: "live" (SSE), "polling", "connection lost"
    device-id, firmware, uptime, heap, time, wifi, mqtt, config-in-use    status fields
    banner                      the config error / setup-mode notice (hidden when none)
    setup-link                  setup mode only: the banner's link to /setup
    u-<key>, f-<key>, st-<key>  a module's voltage (V), frequency (Hz), status text
    i-<key>-<n>, p-<key>-<n>, pf-<key>-<n>, q-<key>-<n>    a channel's I (A), P (W), PF, Q (var)
    import-<part>-<key>-<n>, export-<part>-<key>-<n>        energy in kWh, 3 decimals
    today-head-<key>            the "today" column's header: "since boot" until the first time sync
    address-<key>, label-<key>, variant-<key>, protocol-<key>, error-<key>   the module table
    journal-records, journal-commit, journal-erases, journal-other   journal health
    log                         the last log lines
    nav-main, nav-settings      the two views' links
    cfg-text, cfg-save, cfg-reload, cfg-error, cfg-status, cfg-secrets, cfg-readonly, cfg-source
    login-form, login-password, login-button, login-error, logout-button, restart-button

Decimals: V 1, Hz 2, A 3, W 1, PF 2, var 1, kWh 3. A value the gateway does not know shows as "-".
Text from the gateway (labels, errors, log lines) is escaped or set as text, never parsed as HTML.
"""

PAGE = rb"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>rbAmp gateway</title><link rel="icon" href="data:,">
<style>
:root{--fg:#1b1f23;--bg:#f4f5f7;--card:#fff;--mute:#667;--ok:#17803d;--bad:#c62828;--acc:#1558b0}
@media(prefers-color-scheme:dark){:root{--fg:#e6e6e6;--bg:#15171a;--card:#202328;--mute:#99a;
--ok:#5fd38a;--bad:#ff7a7a;--acc:#7fb0ff}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem;padding:.6rem 1rem;background:var(--card);
border-bottom:1px solid #8883}
h1{font-size:1.2rem;margin:0;flex:1}h2{font-size:1.05rem;margin:1.2rem 0 .5rem}h3{font-size:1rem;margin:0 0 .4rem}
nav a{display:inline-block;padding:.6rem .9rem;min-height:44px;color:var(--acc);text-decoration:none;
border-radius:.4rem}
nav a.on{background:var(--bg);font-weight:600}
main{max-width:64rem;margin:0 auto;padding:0 1rem 2rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(19rem,1fr));gap:.8rem}
.card{background:var(--card);border-radius:.5rem;padding:.8rem;overflow-x:auto;border:1px solid #8882}
.big{font-size:1.5rem;font-weight:600;margin-right:1rem}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:.3rem .4rem;text-align:right;white-space:nowrap}th{color:var(--mute);font-weight:500}
th:first-child,td:first-child,.txt td,.txt th{text-align:left}tr+tr td{border-top:1px solid #8882}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}dt{color:var(--mute)}dd{margin:0}
.ok{color:var(--ok)}.bad{color:var(--bad)}.mute{color:var(--mute);font-size:.9rem}
#conn{padding:.2rem .6rem;border-radius:1rem;border:1px solid currentColor;font-size:.9rem}
#banner{background:#ffd54f;color:#222;padding:.6rem 1rem;margin-top:1rem;border-radius:.4rem}
pre{background:var(--card);padding:.6rem;overflow-x:auto;font-size:.8rem;border-radius:.4rem;margin:0}
textarea{width:100%;min-height:12rem;font:14px/1.35 ui-monospace,Menlo,Consolas,monospace;padding:.5rem;
color:var(--fg);background:var(--card);border:1px solid #8886;border-radius:.4rem}
textarea.err{border:2px solid var(--bad);outline:0}
input{font-size:16px;padding:.5rem;min-height:44px;border:1px solid #8886;border-radius:.4rem;
background:var(--card);color:var(--fg)}
button{font-size:1rem;min-height:44px;padding:.5rem 1.1rem;margin:.3rem .4rem .3rem 0;border:0;
border-radius:.4rem;background:var(--acc);color:#fff;cursor:pointer}
button.alt{background:var(--mute)}button:disabled{opacity:.5}
[hidden]{display:none!important}
</style></head><body>
<header><h1>rbAmp gateway <span id="device-id" class="mute"></span></h1>
<nav><a href="#" id="nav-main">Live</a><a href="#settings" id="nav-settings">Settings</a></nav>
<span id="conn" class="bad">connecting</span></header>
<main>
<div id="banner" role="alert" hidden></div>
<div id="view-main">
<h2>Live</h2><div id="live" class="cards"></div>
<h2>Energy <span class="mute">kWh</span></h2><div id="energy" class="cards"></div>
<h2>Status</h2>
<div class="cards"><div class="card"><dl>
<dt>firmware</dt><dd id="firmware">-</dd><dt>uptime</dt><dd id="uptime">-</dd>
<dt>heap</dt><dd id="heap">-</dd><dt>time</dt><dd id="time">-</dd>
<dt>Wi-Fi</dt><dd id="wifi">-</dd><dt>MQTT</dt><dd id="mqtt">-</dd><dt>config</dt><dd id="config-in-use">-</dd>
</dl></div><div class="card"><h3>Journal</h3><dl>
<dt>records</dt><dd id="journal-records">-</dd><dt>last commit</dt><dd id="journal-commit">-</dd>
<dt>erases per block</dt><dd id="journal-erases">-</dd></dl><div id="journal-other" class="mute"></div></div></div>
<h2>Modules</h2><div class="card"><table class="txt"><thead><tr><th>address</th><th>label</th>
<th>variant</th><th>protocol</th><th>status</th></tr></thead><tbody id="modules"></tbody></table></div>
<h2>Log</h2><pre id="log"></pre>
</div>
<div id="view-settings" hidden>
<h2>Settings: config.json</h2>
<p id="cfg-source" class="mute"></p>
<p id="cfg-readonly" hidden>Read only: set <code>web.password</code> in config.json to change settings here.</p>
<form id="login-form" hidden><label for="login-password">Password</label>
<input type="password" id="login-password" autocomplete="current-password">
<button id="login-button">Log in</button> <span id="login-error" class="bad"></span></form>
<p id="cfg-secrets" class="mute"></p>
<textarea id="cfg-text" spellcheck="false" autocapitalize="off" autocomplete="off" aria-label="config.json">
</textarea>
<p id="cfg-error" class="bad" role="alert"></p><p id="cfg-status" role="status"></p>
<button id="cfg-save">Save and restart</button><button id="cfg-reload" class="alt">Reload</button>
<button id="restart-button" class="alt">Restart</button><button id="logout-button" class="alt" hidden>Log out</button>
</div>
</main>
<script>
"use strict";
var $=(id)=>{return document.getElementById(id);};
var PARTS=["total","today","yesterday","month","last_month"],shape="",es=null,seen=0,polling=false;
var mode="connecting",ticks=0,cfg=null,authed=false,restarting=null,uptime=-1;
function txt(id,t){var e=$(id);if(e&&e.textContent!==t)e.textContent=t;}
function num(v,d){return v==null?"-":Number(v).toFixed(d);}
function kwh(v){return v==null?"-":(v/1000).toFixed(3);}
function esc(s){return String(s).replace(/[&<>"']/g,(c)=>{return "&#"+c.charCodeAt(0)+";";});}
function dur(s){if(s==null)return "-";var v=[Math.floor(s/86400),Math.floor(s%86400/3600),
  Math.floor(s%3600/60),Math.floor(s%60)],u=[" d"," h"," min"," s"],i=0;while(i<3&&!v[i])i++;
  return v.slice(i).map((x,j)=>{return x+u[i+j];}).join(" ");}
function hex(a){return a==null?"-":"0x"+Number(a).toString(16);}
function row(cells,tag){return "<tr>"+cells.map((c)=>{return "<"+(tag||"td")+(c[1]?" id='"+esc(c[1])+"'":"")+
  ">"+esc(c[0])+"</"+(tag||"td")+">";}).join("")+"</tr>";}
function build(s){
  var live="",energy="",mods="";
  s.modules.forEach((m)=>{
    var k=m.key;
    live+="<div class='card'><h3>"+esc(m.label||k)+" <span class='mute'>"+esc(k)+"</span></h3><p>"+
      "<span class='big'><span id='u-"+esc(k)+"'>-</span> V</span><span class='big'><span id='f-"+esc(k)+
      "'>-</span> Hz</span><span id='st-"+esc(k)+"'></span></p><table>"+
      row([["ch"],["I A"],["P W"],["PF"],["Q var"]],"th");
    energy+="<div class='card'><h3>"+esc(m.label||k)+"</h3><table>"+row([["ch"],["total"],[
      s.energy_period==="day"?"today":"since boot","today-head-"+k],["yesterday"],["month"],["last month"]],"th");
    m.channels.forEach((c)=>{
      var n=k+"-"+c.ch;
      live+=row([[c.ch],["-","i-"+n],["-","p-"+n],["-","pf-"+n],["-","q-"+n]]);
      ["import","export"].forEach((dir)=>{
        energy+=row([[c.ch+" "+dir]].concat(PARTS.map((p)=>{
          return ["-",dir+"-"+p.replace("_","-")+"-"+n];})));
      });
    });
    live+="</table></div>";energy+="</table></div>";
    mods+=row([["-","address-"+k],["-","label-"+k],["-","variant-"+k],["-","protocol-"+k],["-","error-"+k]]);
  });
  $("live").innerHTML=live;$("energy").innerHTML=energy;$("modules").innerHTML=mods;
}
function show(s){
  seen=Date.now();uptime=s.uptime_s;
  var sh=s.modules.map((m)=>{return m.key+":"+m.channels.map((c)=>{return c.ch;});}).join(" ");
  if(sh!==shape){shape=sh;build(s);}
  txt("device-id",s.device_id||"");txt("firmware",s.firmware||"-");txt("uptime",dur(s.uptime_s));
  txt("heap",s.heap_free==null?"-":s.heap_free+" B free, "+s.heap_used+" B used");
  var t=s.time||{};txt("time",t.synced?t.local+" ("+t.tz+")":"not synced yet ("+(t.tz||"-")+")");
  var w=s.wifi||{};txt("wifi",[w.mode,w.ssid,w.rssi==null?null:w.rssi+" dBm",w.ip]
    .filter((x)=>{return x!=null&&x!=="";}).join(", ")||"-");
  var q=s.mqtt||{};txt("mqtt",(q.state||"-")+(q.broker?" ("+q.broker+")":""));
  var c=s.config||{};txt("config-in-use",c.in_use||"-");
  var b=$("banner"),setup=w.mode==="setup";b.hidden=!c.error&&!setup;
  if(c.error)txt("banner","Config problem: "+c.error);
  else if(setup&&!$("setup-link"))b.innerHTML="Setup mode: <a id='setup-link' href='/setup'>choose a Wi-Fi network</a>";
  var j=s.journal||{};txt("journal-records",j.records==null?"-":String(j.records));
  txt("journal-commit",j.last_commit_s==null?"-":dur(j.last_commit_s)+" ago");
  txt("journal-erases",j.erases&&j.erases.length?j.erases.join(", "):"-");
  txt("journal-other",Object.keys(j).filter((x)=>{return ["records","last_commit_s","erases"].indexOf(x)<0;})
    .map((x)=>{return x.replace(/_/g," ")+": "+(typeof j[x]=="object"?JSON.stringify(j[x]):j[x]);}).join(", "));
  s.modules.forEach((m)=>{
    var k=m.key,ok=m.status==="ok";
    txt("u-"+k,num(m.voltage_v,1));txt("f-"+k,num(m.frequency_hz,2));
    txt("st-"+k,m.status+(m.error?": "+m.error:""));$("st-"+k).className=ok?"ok":"bad";
    txt("today-head-"+k,s.energy_period==="day"?"today":"since boot");
    txt("address-"+k,hex(m.address));txt("label-"+k,m.label||"-");txt("variant-"+k,m.variant||"-");
    txt("protocol-"+k,m.protocol==null?"-":String(m.protocol));
    txt("error-"+k,m.status+(m.error?": "+m.error:""));$("error-"+k).className=ok?"ok":"bad";
    m.channels.forEach((ch)=>{
      var n=k+"-"+ch.ch;
      txt("i-"+n,num(ch.current_a,3));txt("p-"+n,num(ch.power_w,1));txt("pf-"+n,num(ch.pf,2));
      txt("q-"+n,num(ch.reactive_var,1));
      ["import","export"].forEach((dir)=>{var e=ch[dir+"_wh"]||{};PARTS.forEach((p)=>{
        txt(dir+"-"+p.replace("_","-")+"-"+n,kwh(e[p]));});});
    });
  });
  $("log").textContent=(s.log||[]).join("\n");
}
function conn(m){
  if(m)mode=m;
  if(seen&&Date.now()-seen>12000)mode="connection lost";
  txt("conn",mode);$("conn").className=mode==="live"||mode==="polling"?"ok":"bad";
}
function stream(){
  if(es)es.close();
  es=null;if(!window.EventSource||document.hidden)return;
  es=new EventSource("/api/events");
  es.addEventListener("state",(ev)=>{show(JSON.parse(ev.data));conn("live");});
  // readyState 2: the gateway refused the stream (e.g. too many open); polling stands in, a retry comes later
  es.onerror=()=>{if(es&&es.readyState===2)es=null;conn("connection lost");poll();};
}
// a board that vanished without a reset would leave a request hanging for minutes
function get(url){
  var c=new AbortController();setTimeout(()=>c.abort(),8000);
  return fetch(url,{cache:"no-store",signal:c.signal}).then((r)=>{if(!r.ok)throw r.status;return r.json();});
}
function poll(){
  if(polling||(es&&es.readyState===1&&mode==="live"))return;
  polling=true;
  get("/api/state").then((s)=>{show(s);conn(es&&es.readyState===1?"live":"polling");})
    .catch(()=>{conn("connection lost");}).then(()=>{polling=false;});
}
setInterval(()=>{poll();if(!es&&++ticks%6===0)stream();conn();},5000);
document.addEventListener("visibilitychange",()=>{
  if(document.hidden&&es){es.close();es=null;}else if(!document.hidden&&!es){stream();poll();}});
function send(method,url,body){
  return fetch(url,{method:method,body:body,cache:"no-store",credentials:"same-origin",
    headers:{"Content-Type":"application/json","X-Requested-With":"rbamp"}}).then((r)=>{
    return r.text().then((t)=>{var d={};try{d=JSON.parse(t);}catch(x){d={error:t||r.statusText};}
      return {status:r.status,data:d};});});
}
function mark(key){
  var ta=$("cfg-text"),text=ta.value,at=0,end=0;
  ta.className="err";if(!key)return;
  String(key).split(/[.\[\]]+/).forEach((part)=>{
    if(!part)return;var i=/^\d+$/.test(part)?-1:text.indexOf('"'+part+'"',at);
    if(i>=0){at=i;end=i+part.length+2;}});
  if(end){ta.focus();ta.setSelectionRange(at,end);
    ta.scrollTop=Math.max(0,(text.slice(0,at).split("\n").length-4)*parseFloat(getComputedStyle(ta).lineHeight));}
}
function access(){
  var pw=cfg.secrets_set.indexOf("web.password")>=0,may=cfg.writable||authed;
  $("cfg-readonly").hidden=pw||cfg.writable;
  $("login-form").hidden=!pw||may;$("logout-button").hidden=!pw||!authed;
  $("cfg-save").disabled=!may;$("restart-button").disabled=!may;
}
function settings(c){
  cfg=c;
  txt("cfg-source","In use: "+c.in_use+(c.error?" (config error: "+c.error+")":""));
  txt("cfg-secrets",c.secrets_set.length?"Secrets stored: "+c.secrets_set.join(", ")+
    ". They show blank here; a blank secret keeps the stored value.":"No secrets stored.");
  var ta=$("cfg-text");ta.value=c.text||JSON.stringify(c.config,null,2);ta.className="";
  ta.rows=Math.min(40,ta.value.split("\n").length+1);access();
}
function load(){
  return send("GET","/api/config").then((r)=>{
    if(r.status!==200)throw new Error(r.data.error||("HTTP "+r.status));settings(r.data);
  }).catch((e)=>{txt("cfg-error","Could not load the settings: "+e.message);});
}
// back after a restart: a new process (uptime below the last one seen), or answering after a gap
function restarted(msg,done){
  var start=Date.now(),down=false,busy=false,then=uptime;txt("cfg-status",msg);
  clearInterval(restarting);
  restarting=setInterval(()=>{
    if(Date.now()-start>120000){clearInterval(restarting);
      txt("cfg-status",done+" The gateway has not come back within 2 minutes.");}
    if(busy)return;busy=true;
    get("/api/state").then((s)=>{
      if(down||s.uptime_s<then){clearInterval(restarting);
        txt("cfg-status",done+" The gateway is back (up "+dur(s.uptime_s)+").");load();stream();}
    }).catch(()=>{down=true;}).then(()=>{busy=false;});
  },1000);
}
function refused(r){
  if(r.status===401){authed=false;if(cfg){cfg.writable=false;access();}$("login-password").focus();}
  txt("cfg-error",(r.data.error||"HTTP "+r.status)+(r.data.key?" (key: "+r.data.key+")":""));
}
$("cfg-save").onclick=()=>{
  txt("cfg-error","");txt("cfg-status","");$("cfg-text").className="";
  send("PUT","/api/config",$("cfg-text").value).then((r)=>{
    if(r.status===200)restarted("Saved, restarting...","Saved.");
    else{refused(r);if(r.status===400)mark(r.data.key);}
  }).catch((e)=>{txt("cfg-error","Not saved: "+e.message);});
};
$("cfg-reload").onclick=()=>{txt("cfg-error","");txt("cfg-status","");load();};
$("restart-button").onclick=()=>{
  send("POST","/api/restart","{}").then((r)=>{
    if(r.status===200)restarted("Restarting...","Restarted.");else refused(r);});
};
$("login-form").onsubmit=(ev)=>{
  ev.preventDefault();txt("login-error","");
  send("POST","/api/login",JSON.stringify({password:$("login-password").value})).then((r)=>{
    if(r.status===200){authed=true;$("login-password").value="";txt("cfg-error","");if(cfg)access();}
    else txt("login-error",r.data.error||"HTTP "+r.status);
  });
};
$("logout-button").onclick=()=>{send("POST","/api/logout","{}").then(()=>{authed=false;load();});};
function view(){
  var set=location.hash==="#settings";$("view-main").hidden=set;$("view-settings").hidden=!set;
  $("nav-main").className=set?"":"on";$("nav-settings").className=set?"on":"";
  if(set&&!cfg)load();
}
window.onhashchange=view;view();stream();poll();
</script></body></html>
"""
