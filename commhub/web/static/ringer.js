// Optional ring sound and desktop notification for a new call. Both are off until the agent turns them
// on: the click is the user gesture browsers require for sound, and the moment to ask for permission.

import { numberText } from "./pop.js";

const SOUND_KEY = "commhub.sound";
const NOTIFY_KEY = "commhub.notify";

export class Ringer {
  constructor(soundBox, notifyBox) {
    this.soundBox = soundBox;
    this.notifyBox = notifyBox;
    this.audio = null;
    soundBox.checked = localStorage.getItem(SOUND_KEY) === "1";
    notifyBox.checked = localStorage.getItem(NOTIFY_KEY) === "1" && window.Notification?.permission === "granted";
    soundBox.addEventListener("change", () => {
      localStorage.setItem(SOUND_KEY, soundBox.checked ? "1" : "0");
      if (soundBox.checked) this.beep();
    });
    notifyBox.addEventListener("change", async () => {
      if (notifyBox.checked && Notification.permission !== "granted") {
        notifyBox.checked = (await Notification.requestPermission()) === "granted";
      }
      localStorage.setItem(NOTIFY_KEY, notifyBox.checked ? "1" : "0");
    });
  }

  ring(message) {
    if (this.soundBox.checked) this.beep();
    if (this.notifyBox.checked && document.hidden && window.Notification?.permission === "granted") {
      const first = (message.matches || [])[0];
      const notice = new Notification(first ? first.name : numberText(message.caller), {
        body: first?.company || numberText(message.caller), tag: `call-${message.call.id}`,
        silent: this.soundBox.checked });
      notice.addEventListener("click", () => window.focus());
    }
  }

  // Two short tones, made in the page: no sound file, nothing fetched.
  beep() {
    try {
      this.audio = this.audio || new AudioContext();
      const start = this.audio.currentTime;
      for (const [offset, frequency] of [[0, 880], [0.25, 660]]) {
        const tone = this.audio.createOscillator();
        const gain = this.audio.createGain();
        tone.frequency.value = frequency;
        gain.gain.setValueAtTime(0.15, start + offset);
        gain.gain.exponentialRampToValueAtTime(0.001, start + offset + 0.2);
        tone.connect(gain).connect(this.audio.destination);
        tone.start(start + offset);
        tone.stop(start + offset + 0.2);
      }
    } catch {
      // No audio device: the card still shows.
    }
  }
}
