"""The gateway's web page: one HTML/CSS/JS document served at ``GET /``, no external assets.

``PAGE`` is a bytes constant so that a frozen build keeps it in flash (a bytes literal in a frozen
module costs no RAM)::

    from gateway.web_page import PAGE
    response = Response(PAGE, headers={"Content-Type": "text/html; charset=utf-8"})

The page reads ``/api/events`` (SSE, ``event: state``) and falls back to polling ``/api/state``.

Element ids the tests rely on (``<key>`` is a module key such as ``m50``, ``<n>`` a channel 1..):

    conn                    the connection indicator ("live", "polling", "connection lost")
    u-<key>, f-<key>        a module's voltage and frequency
    i-<key>-<n>, p-<key>-<n>, pf-<key>-<n>, q-<key>-<n>    a channel's I, P, PF, Q
"""

PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>rbAmp gateway</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;padding:.5rem;max-width:60rem}
table{border-collapse:collapse}td,th{padding:.2rem .5rem;text-align:right}
</style></head><body>
<h1>rbAmp gateway <small id="conn">connecting</small></h1>
<section id="live"></section>
<script>
"use strict";
function $(id){return document.getElementById(id);}
function fmt(v,d){return v===null||v===undefined?"-":Number(v).toFixed(d);}
function show(s){
  var h="";
  s.modules.forEach(function(m){
    h+="<h2>"+m.label+" U <span id='u-"+m.key+"'>"+fmt(m.voltage_v,1)+"</span> V f <span id='f-"+m.key+"'>"+
       fmt(m.frequency_hz,2)+"</span> Hz</h2><table>"+
       "<tr><th>ch</th><th>I A</th><th>P W</th><th>PF</th><th>Q var</th></tr>";
    m.channels.forEach(function(c){
      var k=m.key+"-"+c.ch;
      h+="<tr><td>"+c.ch+"</td><td id='i-"+k+"'>"+fmt(c.current_a,3)+"</td><td id='p-"+k+"'>"+fmt(c.power_w,1)+
         "</td><td id='pf-"+k+"'>"+fmt(c.pf,2)+"</td><td id='q-"+k+"'>"+fmt(c.reactive_var,1)+"</td></tr>";
    });
    h+="</table>";
  });
  $("live").innerHTML=h;
}
function poll(){fetch("/api/state").then(function(r){return r.json();}).then(function(s){
  $("conn").textContent="polling";show(s);}).catch(function(){$("conn").textContent="connection lost";});}
var es=new EventSource("/api/events");
es.addEventListener("state",function(e){$("conn").textContent="live";show(JSON.parse(e.data));});
es.onerror=function(){$("conn").textContent="connection lost";};
poll();
</script></body></html>
"""
